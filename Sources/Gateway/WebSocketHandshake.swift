/// The WebSocket opening handshake read by hand: an upgrade request's head parsed from its bytes,
/// and the `101` that answers it; an `EventSource` request's head read the same way.
import Crypto
import Foundation

/// Reading the head of an HTTP/1.1 request for the one thing the public port mostly gets: a
/// WebSocket upgrade of `/connection/websocket` (or of `/connection/uni_websocket`, the
/// unidirectional endpoint, whose query may carry the connect request), or a `GET` of
/// `/connection/uni_sse` without a body (what `EventSource` sends). Anything else, or
/// anything unusual about the upgrade (a repeated or list-valued key or version, a version other
/// than 13, a body, folded lines), is `other`, and goes to NIO's HTTP pipeline and WebSocket upgrader as it arrived, so
/// what the gateway answers to those is decided in one place.
package enum WebSocketHandshake {
    /// Which WebSocket endpoint a request upgrades.
    enum Endpoint: Equatable, Sendable {
        /// `/connection/websocket`: the client protocol's commands and replies.
        case bidirectional
        /// `/connection/uni_websocket`: one connect request, then pushes only (`UniWebSocket`).
        case unidirectional
    }

    struct Upgrade: Equatable {
        var key: String
        var origin: String?
        var host: String?
        /// The head's length, its closing blank line included: bytes after it are WebSocket frames.
        var headLength: Int
        var endpoint = Endpoint.bidirectional
        /// The request target's query, without its `?`; nil when it has none.
        var query: String?
    }

    /// A `GET /connection/uni_sse` without a body: an `EventSource` (the headers of an upgrade, if
    /// it has them, do not matter on that path).
    struct EventStream: Equatable {
        var origin: String?
        var host: String?
        var headLength: Int
        /// The request target's query, without its `?`; nil when it has none.
        var query: String?
        /// The `Last-Event-ID` an `EventSource` sends when it reconnects (`EventStreamID`).
        var lastEventID: String?
    }

    enum Outcome: Equatable {
        /// The head has not ended yet.
        case incomplete
        case upgrade(Upgrade)
        case eventStream(EventStream)
        case other
    }

    /// A head longer than this goes to the HTTP pipeline, which has its own limits.
    static let maxHeadLength = 8192
    static let path: StaticString = "/connection/websocket"
    static let unidirectionalPath: StaticString = "/connection/uni_websocket"
    static let eventStreamPath: StaticString = "/connection/uni_sse"

    /// The endpoint a request target's path (a query aside) names; nil for any other path.
    static func endpoint(target: Substring) -> (endpoint: Endpoint, query: Substring?)? {
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let query = parts.count > 1 ? parts[1] : nil
        guard let route = parts.first else { return nil }
        if route == path.description { return (.bidirectional, query) }
        if route == unidirectionalPath.description { return (.unidirectional, query) }
        return nil
    }
    private static let acceptGUID = Array("258EAFA5-E914-47DA-95CA-C5AB0DC85B11".utf8)

    static func read(_ bytes: UnsafeRawBufferPointer) -> Outcome {
        let get = "GET ".utf8
        guard bytes.count >= get.count else { return get.starts(with: bytes) ? .incomplete : .other }
        guard bytes.starts(with: get) else { return .other }
        let end = min(bytes.count, maxHeadLength)
        let unfinished: Outcome = bytes.count >= maxHeadLength ? .other : .incomplete
        // The request line: the path (a query aside) and the version.
        let requestLineEnd: Int
        switch line(in: bytes, from: 0, to: end) {
        case .malformed: return .other
        case .pending: return unfinished
        case .end(let index): requestLineEnd = index
        }
        var targetEnd = get.count
        while targetEnd < requestLineEnd, bytes[targetEnd] != UInt8(ascii: " ") { targetEnd += 1 }
        let pathEnd = (get.count..<targetEnd).first { bytes[$0] == UInt8(ascii: "?") } ?? targetEnd
        var endpoint = Endpoint.bidirectional
        var eventStream = false
        if equal(bytes, get.count..<pathEnd, to: path) {
            endpoint = .bidirectional
        } else if equal(bytes, get.count..<pathEnd, to: unidirectionalPath) {
            endpoint = .unidirectional
        } else if equal(bytes, get.count..<pathEnd, to: eventStreamPath) {
            eventStream = true
        } else {
            return .other
        }
        guard equal(bytes, targetEnd..<requestLineEnd, to: " HTTP/1.1") else { return .other }
        let query = pathEnd < targetEnd ? string(bytes, pathEnd + 1..<targetEnd) : nil
        // Header lines until the blank one.
        var key: String?
        var version: String?
        var origin: String?
        var host: String?
        var lastEventID: String?
        var websocket = false
        var lineStart = requestLineEnd + 2
        while true {
            let lineEnd: Int
            switch line(in: bytes, from: lineStart, to: end) {
            case .malformed: return .other
            case .pending: return unfinished
            case .end(let index): lineEnd = index
            }
            if lineEnd == lineStart {
                if eventStream {
                    return .eventStream(EventStream(origin: origin, host: host, headLength: lineEnd + 2, query: query, lastEventID: lastEventID))
                }
                guard let key, version == "13", websocket else { return .other }
                return .upgrade(Upgrade(key: key, origin: origin, host: host, headLength: lineEnd + 2, endpoint: endpoint, query: query))
            }
            guard !isSpace(bytes[lineStart]),
                let colon = (lineStart..<lineEnd).first(where: { bytes[$0] == UInt8(ascii: ":") }), colon > lineStart
            else { return .other }
            let name = lineStart..<colon
            let value = trimmed(bytes, colon + 1..<lineEnd)
            if equal(bytes, name, to: "sec-websocket-key", ignoringCase: true) {
                guard key == nil, !value.isEmpty, !value.contains(where: { bytes[$0] == UInt8(ascii: ",") }) else { return .other }
                key = string(bytes, value)
            } else if equal(bytes, name, to: "sec-websocket-version", ignoringCase: true) {
                guard version == nil else { return .other }
                version = string(bytes, value)
            } else if equal(bytes, name, to: "upgrade", ignoringCase: true) {
                websocket = websocket || listContainsWebSocket(bytes, value)
            } else if equal(bytes, name, to: "origin", ignoringCase: true) {
                if origin == nil { origin = string(bytes, value) }
            } else if equal(bytes, name, to: "host", ignoringCase: true) {
                guard host == nil else { return .other }
                host = string(bytes, value)
            } else if equal(bytes, name, to: "last-event-id", ignoringCase: true) {
                if lastEventID == nil { lastEventID = string(bytes, value) }
            } else if equal(bytes, name, to: "content-length", ignoringCase: true) {
                guard equal(bytes, value, to: "0") else { return .other }
            } else if equal(bytes, name, to: "transfer-encoding", ignoringCase: true) {
                return .other
            }
            lineStart = lineEnd + 2
        }
    }

    /// The `101` response, byte for byte what NIO's upgrader sends.
    package static func response(key: String) -> [UInt8] {
        var hash = Insecure.SHA1()
        hash.update(data: Array(key.utf8))
        hash.update(data: acceptGUID)
        let accept = Data(hash.finalize()).base64EncodedString()
        return Array("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: \(accept)\r\nConnection: upgrade\r\n\r\n".utf8)
    }

    // MARK: bytes

    private enum Line {
        /// The line ends at this index (its CR).
        case end(Int)
        /// Its CRLF has not arrived yet.
        case pending
        /// A CR or LF alone, which only the HTTP pipeline's parser decides about.
        case malformed
    }

    private static func line(in bytes: UnsafeRawBufferPointer, from: Int, to: Int) -> Line {
        var index = from
        while index < to {
            switch bytes[index] {
            case UInt8(ascii: "\r"):
                guard index + 1 < to else { return .pending }
                return bytes[index + 1] == UInt8(ascii: "\n") ? .end(index) : .malformed
            case UInt8(ascii: "\n"):
                return .malformed
            default:
                index += 1
            }
        }
        return .pending
    }

    /// The bytes of `range` against ASCII `text` (lower case when `ignoringCase`).
    private static func equal(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, to text: StaticString, ignoringCase: Bool = false) -> Bool {
        guard range.count == text.utf8CodeUnitCount else { return false }
        let expected = UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount)
        return (0..<expected.count).allSatisfy { offset in
            let byte = bytes[range.lowerBound + offset]
            let folded = ignoringCase && byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte
            return folded == expected[offset]
        }
    }

    private static func isSpace(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }

    /// `range` without the spaces and tabs at either end.
    private static func trimmed(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Range<Int> {
        var lower = range.lowerBound
        var upper = range.upperBound
        while lower < upper, isSpace(bytes[lower]) { lower += 1 }
        while upper > lower, isSpace(bytes[upper - 1]) { upper -= 1 }
        return lower..<upper
    }

    /// Whether a comma-separated `Upgrade` value names `websocket` (any case), as NIO's upgrade handler reads it.
    private static func listContainsWebSocket(_ bytes: UnsafeRawBufferPointer, _ value: Range<Int>) -> Bool {
        var start = value.lowerBound
        while start <= value.upperBound {
            var end = start
            while end < value.upperBound, bytes[end] != UInt8(ascii: ",") { end += 1 }
            if equal(bytes, trimmed(bytes, start..<end), to: "websocket", ignoringCase: true) { return true }
            start = end + 1
        }
        return false
    }

    private static func string(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }
}
