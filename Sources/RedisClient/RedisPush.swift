/// A subscriber connection's push messages (`message` / `pmessage`), read straight from the
/// socket's bytes.
import NIOCore

/// A `message` or `pmessage` push as it arrived: slices of the buffer it was read into, so
/// nothing is copied or allocated per message. A slice keeps its read buffer alive until the
/// message is consumed.
struct RedisPush: Sendable {
    var channel: ByteBuffer
    var pattern: ByteBuffer?
    var payload: ByteBuffer

    init(channel: ByteBuffer, pattern: ByteBuffer?, payload: ByteBuffer) {
        self.channel = channel
        self.pattern = pattern
        self.payload = payload
    }

    enum Parse {
        /// A whole push; the buffer's reader index moved past it.
        case push(RedisPush)
        /// The bytes so far are the start of a push: wait for more. The reader index did not move.
        case incomplete
        /// Not a push in the shape parsed here (a command's reply, say): left to the full parser.
        /// The reader index did not move.
        case other
    }

    /// Redis's limit on a bulk string (`proto-max-bulk-len`); a longer length is not a push.
    static let maximumBulkLength = 512 * 1024 * 1024

    /// Parses `*3\r\n$7\r\nmessage\r\n$<n>\r\n<channel>\r\n$<m>\r\n<payload>\r\n`, or the
    /// four-element `pmessage` with its pattern before the channel, at the reader index.
    static func parse(_ buffer: inout ByteBuffer) -> Parse {
        var cursor = buffer
        guard let count = cursor.readRESPLength(marker: UInt8(ascii: "*")) else { return .incomplete }
        guard count.value == 3 || count.value == 4 else { return .other }
        guard let kind = cursor.readRESPBulk() else { return .incomplete }
        guard let kind = kind.value else { return .other }
        let isMessage = count.value == 3 && kind.readableBytesView.elementsEqual("message".utf8)
        let isPatternMessage = count.value == 4 && kind.readableBytesView.elementsEqual("pmessage".utf8)
        guard isMessage || isPatternMessage else { return .other }
        var pattern: ByteBuffer?
        if isPatternMessage {
            guard let read = cursor.readRESPBulk() else { return .incomplete }
            guard let value = read.value else { return .other }
            pattern = value
        }
        guard let channel = cursor.readRESPBulk() else { return .incomplete }
        guard let channelBytes = channel.value else { return .other }
        guard let payload = cursor.readRESPBulk() else { return .incomplete }
        guard let payloadBytes = payload.value else { return .other }
        buffer = cursor
        return .push(RedisPush(channel: channelBytes, pattern: pattern, payload: payloadBytes))
    }

    /// The same push from a reply the full parser read (after a read that ended inside a reply
    /// it holds, or in a shape the fast path leaves to it).
    init?(reply: RESPValue) {
        guard case .array(let parts) = reply, let kind = parts.first?.string else { return nil }
        func buffer(_ value: RESPValue) -> ByteBuffer? { value.bytes.map { ByteBuffer(bytes: $0) } }
        if kind == "message", parts.count == 3, let channel = buffer(parts[1]) {
            self.init(channel: channel, pattern: nil, payload: buffer(parts[2]) ?? ByteBuffer())
        } else if kind == "pmessage", parts.count == 4, let pattern = buffer(parts[1]), let channel = buffer(parts[2]) {
            self.init(channel: channel, pattern: pattern, payload: buffer(parts[3]) ?? ByteBuffer())
        } else {
            return nil
        }
    }
}

/// One step of `RedisPush.parse`. The step itself returns nil when the bytes end first, and
/// a nil value when they are there but not in the shape it reads.
struct RESPRead<Value> {
    var value: Value?
}

extension ByteBuffer {
    /// `<marker><decimal>\r\n`: nil when the bytes end first; a nil value for another marker, a
    /// sign or a length above Redis's limit.
    mutating func readRESPLength(marker: UInt8) -> RESPRead<Int>? {
        let view = readableBytesView
        guard let first = view.first else { return nil }
        guard first == marker else { return RESPRead(value: nil) }
        var length = 0
        var index = view.index(after: view.startIndex)
        var digits = 0
        while true {
            guard index < view.endIndex else { return nil }
            let byte = view[index]
            if byte == UInt8(ascii: "\r") { break }
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), digits < 10 else { return RESPRead(value: nil) }
            length = length * 10 + Int(byte - UInt8(ascii: "0"))
            digits += 1
            index = view.index(after: index)
        }
        guard digits > 0, length <= RedisPush.maximumBulkLength else { return RESPRead(value: nil) }
        let newline = view.index(after: index)
        guard newline < view.endIndex else { return nil }
        guard view[newline] == UInt8(ascii: "\n") else { return RESPRead(value: nil) }
        moveReaderIndex(forwardBy: newline - view.startIndex + 1)
        return RESPRead(value: length)
    }

    /// `$<n>\r\n<n bytes>\r\n` as a slice: nil when the bytes end first; a nil value when the
    /// shape differs (a null bulk `$-1` included).
    fileprivate mutating func readRESPBulk() -> RESPRead<ByteBuffer>? {
        guard let length = readRESPLength(marker: UInt8(ascii: "$")) else { return nil }
        guard let count = length.value else { return RESPRead(value: nil) }
        guard readableBytes >= count + 2 else { return nil }
        guard getInteger(at: readerIndex + count, as: UInt16.self) == 0x0D0A, let slice = readSlice(length: count) else {
            return RESPRead(value: nil)
        }
        moveReaderIndex(forwardBy: 2)
        return RESPRead(value: slice)
    }
}
