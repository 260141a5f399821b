import Foundation
import Testing

@testable import Gateway

/// The upgrade request read by hand: a plain upgrade of `/connection/websocket` is recognised at
/// any split of its bytes, and everything else is left to the HTTP pipeline.
@Suite struct WebSocketHandshakeTests {
    static let head =
        "GET /connection/websocket HTTP/1.1\r\nHost: chat.example:8000\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + "Origin: https://chat.example\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

    func read(_ text: String) -> WebSocketHandshake.Outcome {
        Array(text.utf8).withUnsafeBytes { WebSocketHandshake.read($0) }
    }

    @Test func aPlainUpgradeIsReadWithItsKeyOriginHostAndLength() {
        let expected = WebSocketHandshake.Upgrade(
            key: "dGhlIHNhbXBsZSBub25jZQ==", origin: "https://chat.example", host: "chat.example:8000", headLength: Self.head.utf8.count)
        #expect(read(Self.head) == .upgrade(expected))
        // Frames after the head are not part of it.
        #expect(read(Self.head + "\u{81}\u{85}abcd") == .upgrade(expected))
    }

    @Test func everyPrefixOfTheHeadIsIncomplete() {
        let bytes = Array(Self.head.utf8)
        for length in 0..<bytes.count {
            let outcome = bytes[..<length].withUnsafeBytes { WebSocketHandshake.read($0) }
            #expect(outcome == .incomplete, "\(length) bytes")
        }
    }

    @Test func namesInAnyCaseAQueryAndAnUpgradeListAreStillAPlainUpgrade() {
        let head =
            "GET /connection/websocket?format=json HTTP/1.1\r\nhost: h\r\nUPGRADE: h2c,  WebSocket \r\nsec-websocket-key:  abc= \r\n"
            + "SEC-WEBSOCKET-VERSION: 13\r\ncontent-length: 0\r\n\r\n"
        #expect(read(head) == .upgrade(.init(key: "abc=", origin: nil, host: "h", headLength: head.utf8.count, query: "format=json")))
    }

    @Test func theUnidirectionalEndpointIsAnUpgradeToo() {
        let query = "cf_connect=%7B%22token%22%3A%22t%22%7D"
        let head = Self.head.replacingOccurrences(of: "/connection/websocket", with: "/connection/uni_websocket?\(query)")
        let expected = WebSocketHandshake.Upgrade(
            key: "dGhlIHNhbXBsZSBub25jZQ==", origin: "https://chat.example", host: "chat.example:8000", headLength: head.utf8.count,
            endpoint: .unidirectional, query: query)
        #expect(read(head) == .upgrade(expected))
        #expect(read(Self.head.replacingOccurrences(of: "/connection/websocket", with: "/connection/uni_websocketx")) == .other)
        #expect(WebSocketHandshake.endpoint(target: "/connection/uni_websocket?a=1")?.endpoint == .unidirectional)
        #expect(WebSocketHandshake.endpoint(target: "/connection/uni_websocket?a=1")?.query == "a=1")
        #expect(WebSocketHandshake.endpoint(target: "/connection/websocket")?.endpoint == .bidirectional)
        #expect(WebSocketHandshake.endpoint(target: "/connection/http_stream") == nil)
    }

    @Test(arguments: [
        ("POST /connection/websocket HTTP/1.1", nil as String?),
        ("GET /healthz HTTP/1.1", nil),
        ("GET /connection/websocketx HTTP/1.1", nil),
        ("GET /connection/websocket HTTP/1.0", nil),
        ("GET /connection/websocket HTTP/1.1", "Sec-WebSocket-Version: 12"),
        ("GET /connection/websocket HTTP/1.1", "Sec-WebSocket-Key: second"),
        ("GET /connection/websocket HTTP/1.1", "Sec-WebSocket-Version: 13"),
        ("GET /connection/websocket HTTP/1.1", "Host: another"),
        ("GET /connection/websocket HTTP/1.1", "Content-Length: 5"),
        ("GET /connection/websocket HTTP/1.1", "Transfer-Encoding: chunked"),
        ("GET /connection/websocket HTTP/1.1", " folded: line"),
        ("GET /connection/websocket HTTP/1.1", "no colon here"),
    ])
    func whatIsNotAPlainUpgradeGoesToTheHTTPPipeline(requestLine: String, extraHeader: String?) {
        var head = Self.head.replacingOccurrences(of: "GET /connection/websocket HTTP/1.1", with: requestLine)
        if let extraHeader { head = head.replacingOccurrences(of: "\r\n\r\n", with: "\r\n\(extraHeader)\r\n\r\n") }
        #expect(read(head) == .other, "\(head)")
    }

    @Test func aHeadWithoutTheUpgradeItNeedsGoesToTheHTTPPipeline() {
        for missing in ["Upgrade: websocket\r\n", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "Sec-WebSocket-Version: 13\r\n"] {
            #expect(read(Self.head.replacingOccurrences(of: missing, with: "")) == .other, "without \(missing)")
        }
        #expect(read(Self.head.replacingOccurrences(of: "Upgrade: websocket", with: "Upgrade: h2c")) == .other)
        #expect(read(Self.head.replacingOccurrences(of: "dGhlIHNhbXBsZSBub25jZQ==", with: "a, b")) == .other)
        // Bare line feeds, and a head that does not end within the limit.
        #expect(read(Self.head.replacingOccurrences(of: "\r\n", with: "\n")) == .other)
        let long = "GET /connection/websocket HTTP/1.1\r\nX-Pad: " + String(repeating: "a", count: WebSocketHandshake.maxHeadLength)
        #expect(read(long) == .other)
    }

    /// What `EventSource` sends is read here too, so its stream starts without NIO's HTTP pipeline;
    /// a body, another version or method, or a broken head still go to the pipeline.
    @Test func anEventSourceRequestIsReadWithItsOriginAndQuery() {
        let head =
            "GET /connection/uni_sse?cf_connect=%7B%7D HTTP/1.1\r\nHost: gw\r\nAccept: text/event-stream\r\nOrigin: https://a.example\r\n"
            + "last-event-id: chat:news/3/ab\r\n\r\n"
        #expect(
            read(head)
                == .eventStream(
                    .init(origin: "https://a.example", host: "gw", headLength: head.utf8.count, query: "cf_connect=%7B%7D", lastEventID: "chat:news/3/ab")))
        #expect(read(String(head.dropLast(2))) == .incomplete)
        for other in [
            head.replacingOccurrences(of: "HTTP/1.1", with: "HTTP/1.0"),
            head.replacingOccurrences(of: "GET ", with: "POST "),
            head.replacingOccurrences(of: "\r\n\r\n", with: "\r\nContent-Length: 2\r\n\r\n"),
            head.replacingOccurrences(of: "\r\n\r\n", with: "\r\nTransfer-Encoding: chunked\r\n\r\n"),
            head.replacingOccurrences(of: "uni_sse", with: "uni_http_stream"),
        ] {
            #expect(read(other) == .other, "\(other)")
        }
    }

    /// RFC 6455 §1.3's example, in the bytes NIO's upgrader sends.
    @Test func theAnswerIsTheRFCsAcceptValueInNIOsResponse() {
        let response = String(decoding: WebSocketHandshake.response(key: "dGhlIHNhbXBsZSBub25jZQ=="), as: UTF8.self)
        #expect(
            response
                == "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                + "Connection: upgrade\r\n\r\n")
    }
}
