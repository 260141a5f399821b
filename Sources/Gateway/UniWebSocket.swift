/// The unidirectional WebSocket endpoint's message forms (after Centrifugo's `uni_websocket`): the
/// connect request read from the URL, and pushes sent without the bidirectional protocol's wrapper.
import NIOCore
import SwitchboardCore

/// What sets `/connection/uni_websocket` apart from `/connection/websocket`. The client sends one
/// connect request (a `ConnectRequest` object, not a command) as its first message, or passes it
/// in the URL as `cf_connect`, and from then on only receives: the connect result as
/// `{"connect":{…}}`, and every push as the push object itself (`{"channel":"…","pub":{…}}`),
/// never wrapped in `{"push":…}`. Subscriptions are server-side (the token's `channels` claim, or
/// the server API's subscribe); `subs` in the connect request recovers them from a known position.
/// Anything the client sends after its connect request is read and ignored. The server's ping is
/// `{}`, sent with a WebSocket ping frame, whose pong (which browsers send by themselves) is what
/// keeps the connection; a disconnect is a `{"disconnect":{…}}` push before the close frame.
enum UniWebSocket {
    enum ParameterError: Error, Equatable {
        /// A `%` not followed by two hex digits.
        case badEscape
    }

    static let connectParameter = "cf_connect"

    /// The `cf_connect` query parameter, percent-decoded (`+` is a space, as in a form); nil when
    /// the query has none. Only its first occurrence counts.
    static func connectRequest(query: Substring) throws(ParameterError) -> ByteBuffer? {
        // On the query's bytes: splitting the `Substring` walked grapheme clusters, a few percent
        // of a new stream's CPU.
        var query = query
        let found: Result<ByteBuffer, ParameterError>? = query.withUTF8 { bytes in
            guard let value = connectValue(in: bytes) else { return nil }
            return Result { () throws(ParameterError) in try decode(UnsafeBufferPointer(rebasing: bytes[value])) }
        }
        return try found?.get()
    }

    /// Whether the query has a `cf_connect` parameter, decodable or not (without decoding it).
    static func hasConnectParameter(query: Substring) -> Bool {
        var query = query
        return query.withUTF8 { connectValue(in: $0) != nil }
    }

    /// Where the first `cf_connect` parameter's value lies in the query's bytes.
    private static func connectValue(in bytes: UnsafeBufferPointer<UInt8>) -> Range<Int>? {
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count, bytes[end] != UInt8(ascii: "&") { end += 1 }
            var equals = start
            while equals < end, bytes[equals] != UInt8(ascii: "=") { equals += 1 }
            if bytes[start..<equals].elementsEqual(connectParameter.utf8) { return min(equals + 1, end)..<end }
            start = end + 1
        }
        return nil
    }

    private static func decode(_ bytes: UnsafeBufferPointer<UInt8>) throws(ParameterError) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
        var index = 0
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "+"):
                buffer.writeInteger(UInt8(ascii: " "))
                index += 1
            case UInt8(ascii: "%"):
                guard index + 2 < bytes.count, let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) else {
                    throw .badEscape
                }
                buffer.writeInteger(high << 4 | low)
                index += 3
            case let byte:
                buffer.writeInteger(byte)
                index += 1
            }
        }
        return buffer
    }

    /// The value of one hex digit (either case); nil for any other byte.
    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    private static let pushPrefix = Array(#"{"push":"#.utf8)

    /// The message as a unidirectional client receives it: a push (`{"push":X}`) becomes `X`, a
    /// view into the same bytes, not a copy; anything else (the connect result, a ping) as it is.
    static func unwrap(_ message: OutboundMessage) -> OutboundMessage {
        let payload = message.payload
        let size = payload.readableBytes
        guard size > pushPrefix.count + 1,
            payload.readableBytesView.starts(with: pushPrefix),
            payload.getInteger(at: payload.readerIndex + size - 1, as: UInt8.self) == UInt8(ascii: "}")
        else { return message }
        return OutboundMessage(payload: payload.getSlice(at: payload.readerIndex + pushPrefix.count, length: size - pushPrefix.count - 1)!)
    }

    /// `{"<kind>":{…}}`: a push that belongs to no channel (`connect`, `disconnect`).
    static func push(_ kind: String, body: (inout JSONWriter) -> Void) -> String {
        var writer = JSONWriter(capacity: 128)
        writer.beginObject()
        writer.key(kind)
        writer.beginObject()
        body(&writer)
        writer.endObject()
        writer.endObject()
        return writer.output
    }

    static func disconnectPush(_ disconnect: Disconnect) -> String {
        push("disconnect") { writer in
            writer.field("code", disconnect.code)
            writer.field("reason", disconnect.reason)
        }
    }
}
