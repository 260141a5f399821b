/// The WebSocket opening handshake read by hand: an upgrade request's head parsed from its bytes,
/// and the `101` that answers it.
import Crypto

/// Reading the head of an HTTP/1.1 request for the one thing the public port mostly gets: a
/// WebSocket upgrade of `/connection/websocket`. Anything else, or anything unusual about the
/// upgrade (a repeated or list-valued key or version, a version other than 13, a body, folded
/// lines), is `other`, and goes to NIO's HTTP pipeline and WebSocket upgrader as it arrived, so
/// what the gateway answers to those is decided in one place.
enum WebSocketHandshake {
    struct Upgrade: Equatable {
        var key: String
        var origin: String?
        var host: String?
        /// The head's length, its closing blank line included: bytes after it are WebSocket frames.
        var headLength: Int
    }

    enum Outcome: Equatable {
        /// The head has not ended yet.
        case incomplete
        case upgrade(Upgrade)
        case other
    }

    /// A head longer than this goes to the HTTP pipeline, which has its own limits.
    static let maxHeadLength = 8192
    static let path: StaticString = "/connection/websocket"
    private static let acceptGUID = Array("258EAFA5-E914-47DA-95CA-C5AB0DC85B11".utf8)

    static func read(_ bytes: UnsafeRawBufferPointer) -> Outcome {
        let get = "GET ".utf8
        guard bytes.count >= get.count else { return get.starts(with: bytes) ? .incomplete : .other }
        guard bytes.starts(with: get) else { return .other }
        let end = min(bytes.count, maxHeadLength)
        // The request line.
        let unfinished: Outcome = bytes.count >= maxHeadLength ? .other : .incomplete
        let firstLineEnd: Int?
        do { firstLineEnd = try lineEnd(in: bytes, from: 0, to: end) } catch { return .other }
        guard let requestLineEnd = firstLineEnd else { return unfinished }
        let target = get.count
        var targetEnd = target
        while targetEnd < requestLineEnd, bytes[targetEnd] != UInt8(ascii: " ") { targetEnd += 1 }
        guard equal(bytes, target..<targetEnd, ignoringQuery: true, to: path), equal(bytes, targetEnd..<requestLineEnd, to: " HTTP/1.1") else {
            return .other
        }
        // Header lines until the blank one.
        var key: String?
        var version: String?
        var origin: String?
        var host: String?
        var websocket = false
        var lineStart = requestLineEnd + 2
        while true {
            let found: Int?
            do { found = try lineEnd(in: bytes, from: lineStart, to: end) } catch { return .other }
            guard let end = found else { return unfinished }
            if end == lineStart {
                guard let key, version == "13", websocket else { return .other }
                return .upgrade(Upgrade(key: key, origin: origin, host: host, headLength: end + 2))
            }
            guard bytes[lineStart] != UInt8(ascii: " "), bytes[lineStart] != UInt8(ascii: "\t"),
                let colon = (lineStart..<end).first(where: { bytes[$0] == UInt8(ascii: ":") }), colon > lineStart
            else { return .other }
            var valueStart = colon + 1
            var valueEnd = end
            while valueStart < valueEnd, bytes[valueStart] == UInt8(ascii: " ") || bytes[valueStart] == UInt8(ascii: "\t") { valueStart += 1 }
            while valueEnd > valueStart, bytes[valueEnd - 1] == UInt8(ascii: " ") || bytes[valueEnd - 1] == UInt8(ascii: "\t") { valueEnd -= 1 }
            let name = lineStart..<colon
            let value = valueStart..<valueEnd
            if equalCaseInsensitive(bytes, name, to: "sec-websocket-key") {
                guard key == nil, !value.isEmpty, !contains(bytes, value, UInt8(ascii: ",")) else { return .other }
                key = string(bytes, value)
            } else if equalCaseInsensitive(bytes, name, to: "sec-websocket-version") {
                guard version == nil else { return .other }
                version = string(bytes, value)
            } else if equalCaseInsensitive(bytes, name, to: "upgrade") {
                websocket = websocket || listContainsWebSocket(bytes, value)
            } else if equalCaseInsensitive(bytes, name, to: "origin") {
                if origin == nil { origin = string(bytes, value) }
            } else if equalCaseInsensitive(bytes, name, to: "host") {
                guard host == nil else { return .other }
                host = string(bytes, value)
            } else if equalCaseInsensitive(bytes, name, to: "content-length") {
                guard equal(bytes, value, to: "0") else { return .other }
            } else if equalCaseInsensitive(bytes, name, to: "transfer-encoding") {
                return .other
            }
            lineStart = end + 2
        }
    }

    /// The `101` response, byte for byte what NIO's upgrader sends.
    static func response(key: String) -> [UInt8] {
        var hash = Insecure.SHA1()
        hash.update(data: Array(key.utf8))
        hash.update(data: acceptGUID)
        let accept = Array(hash.finalize()).base64
        var response = Array("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: ".utf8)
        response.reserveCapacity(response.count + accept.count + 25)
        response += accept
        response += "\r\nConnection: upgrade\r\n\r\n".utf8
        return response
    }

    // MARK: bytes

    private struct BareLineFeed: Error {}

    /// The index of the CR of the first CRLF in `from..<to`, nil if none has arrived yet; throws
    /// at a CR or LF alone, which only the HTTP pipeline's parser decides about.
    private static func lineEnd(in bytes: UnsafeRawBufferPointer, from: Int, to: Int) throws(BareLineFeed) -> Int? {
        var index = from
        while index < to {
            switch bytes[index] {
            case UInt8(ascii: "\r"):
                guard index + 1 < to else { return nil }
                guard bytes[index + 1] == UInt8(ascii: "\n") else { throw BareLineFeed() }
                return index
            case UInt8(ascii: "\n"):
                throw BareLineFeed()
            default:
                index += 1
            }
        }
        return nil
    }

    private static func equal(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, ignoringQuery: Bool = false, to text: StaticString) -> Bool {
        var end = range.upperBound
        if ignoringQuery, let query = range.first(where: { bytes[$0] == UInt8(ascii: "?") }) { end = query }
        guard end - range.lowerBound == text.utf8CodeUnitCount else { return false }
        let expected = UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount)
        return (0..<expected.count).allSatisfy { bytes[range.lowerBound + $0] == expected[$0] }
    }

    /// `name` against a lower-case ASCII `text`.
    private static func equalCaseInsensitive(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>, to text: StaticString) -> Bool {
        guard name.count == text.utf8CodeUnitCount else { return false }
        let expected = UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount)
        return (0..<expected.count).allSatisfy { lowercased(bytes[name.lowerBound + $0]) == expected[$0] }
    }

    /// Whether a comma-separated `Upgrade` value names `websocket` (any case), as NIO's upgrade handler reads it.
    private static func listContainsWebSocket(_ bytes: UnsafeRawBufferPointer, _ value: Range<Int>) -> Bool {
        var start = value.lowerBound
        while start <= value.upperBound {
            var end = start
            while end < value.upperBound, bytes[end] != UInt8(ascii: ",") { end += 1 }
            var first = start
            var last = end
            while first < last, bytes[first] == UInt8(ascii: " ") || bytes[first] == UInt8(ascii: "\t") { first += 1 }
            while last > first, bytes[last - 1] == UInt8(ascii: " ") || bytes[last - 1] == UInt8(ascii: "\t") { last -= 1 }
            if equalCaseInsensitive(bytes, first..<last, to: "websocket") { return true }
            start = end + 1
        }
        return false
    }

    private static func contains(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ byte: UInt8) -> Bool {
        range.contains { bytes[$0] == byte }
    }

    private static func string(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    private static func lowercased(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte
    }
}

extension Array where Element == UInt8 {
    /// Standard base64 with padding, as ASCII bytes.
    fileprivate var base64: [UInt8] {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var output: [UInt8] = []
        output.reserveCapacity((count + 2) / 3 * 4)
        var index = 0
        while index < count {
            let first = UInt32(self[index])
            let second = index + 1 < count ? UInt32(self[index + 1]) : 0
            let third = index + 2 < count ? UInt32(self[index + 2]) : 0
            let triple = first << 16 | second << 8 | third
            output.append(alphabet[Int(triple >> 18 & 63)])
            output.append(alphabet[Int(triple >> 12 & 63)])
            output.append(index + 1 < count ? alphabet[Int(triple >> 6 & 63)] : UInt8(ascii: "="))
            output.append(index + 2 < count ? alphabet[Int(triple & 63)] : UInt8(ascii: "="))
            index += 3
        }
        return output
    }
}
