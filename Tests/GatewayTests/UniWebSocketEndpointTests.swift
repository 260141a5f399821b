import Foundation
import NIOCore
import SwitchboardCore
import Synchronization
import TestSupport
import Testing

@testable import Gateway

/// `/connection/uni_websocket` on real sockets over the Redis engine: a client with no SDK (one
/// connect request, in the URL or as its first message) receives the channels its token names as
/// plain pushes, learns why it was disconnected, and is kept alive by WebSocket pongs.
@Suite struct UniWebSocketEndpointTests {
    static let key = ["X-API-Key": LiveGateway.apiKey]

    /// A live gateway whose `chat` namespace keeps history (what recovery needs); the HTTP stream tests use it too.
    static func withGateway(
        _ configure: @escaping (inout GatewayConfiguration) -> Void = { _ in },
        _ body: (_ ports: GatewayServer.ListeningPorts) async throws -> Void
    ) async throws {
        try await LiveGateway.with({ configuration in
            var chat = ChannelOptions()
            chat.historySize = 10
            chat.historyTTL = 60
            configuration.namespaces = [NamespaceConfiguration(name: "chat", options: chat)]
            configure(&configuration)
        }, body)
    }

    func token(user: String = "7", channels: [String] = ["chat:news"]) -> String {
        GatewayTokens.mint(secret: LiveGateway.tokenSecret, user: user, ttl: 3600, channels: channels)
    }

    static func target(connect request: String) -> String {
        "/connection/uni_websocket?cf_connect=" + request.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
    }

    /// The next text message as JSON, skipping pings: the WebSocket's, and the protocol's `{}`,
    /// which a unidirectional client also gets every `ping_interval` (a slow run reaches it).
    func nextJSON(_ events: inout AsyncStream<WebSocketTestClient.Event>.AsyncIterator) async -> JSONValue? {
        while let event = await events.next() {
            switch event {
            case .text(let text):
                guard let message = JSONValue.parse(Array(text.utf8)) else { return nil }
                if message == .object([:]) { continue }
                return message
            case .ping: continue
            case .close, .end: return nil
            }
        }
        return nil
    }

    func publish(_ ports: GatewayServer.ListeningPorts, channel: String, data: String) async throws {
        let answer = try await Curl.request(
            "POST", "http://127.0.0.1:\(ports.internalPort)/api/publish", headers: Self.key,
            body: #"{"channel":"\#(channel)","data":\#(data)}"#)
        #expect(answer.status == 200, "\(answer.body)")
    }

    @Test func aConnectRequestInTheURLConnectsAndPublicationsArriveAsPlainPushes() async throws {
        try await Self.withGateway { ports in
            let client = try await WebSocketTestClient.connect(port: ports.port, target: Self.target(connect: #"{"token":"\#(token())"}"#))
            var events = client.events.makeAsyncIterator()
            let connect = try #require(await nextJSON(&events))
            #expect(connect["connect"]?["client"]?.stringValue?.count == 36, "\(connect)")
            #expect(connect["connect"]?["subs"]?["chat:news"] != nil, "\(connect)")
            #expect(connect["id"] == nil)
            try await publish(ports, channel: "chat:news", data: #"{"n":1}"#)
            let publication = try #require(await nextJSON(&events))
            #expect(publication["channel"] == .string("chat:news"), "\(publication)")
            #expect(publication["pub"]?["data"]?["n"] == .int(1))
            #expect(publication["pub"]?["offset"] == .int(1))
            #expect(publication["push"] == nil)
            await client.close()
        }
    }

    /// The `101` waits for the connect push and both go out in one `send`: the client's first read
    /// holds both (sent apart, the `101` arrives alone, well before the connect is done).
    @Test func theUpgradeIsAnsweredTogetherWithTheConnectPush() async throws {
        try await Self.withGateway { ports in
            let connection = try await WebSocketHandshakeIntegrationTests.RawConnection.open(port: ports.port)
            let target = Self.target(connect: #"{"token":"\#(token())"}"#)
            try await connection.send(Array(
                "GET \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".utf8))
            let text = await connection.text { $0.contains("\"client\"") }
            let first = String(decoding: connection.reads.withLock { $0.first ?? [] }, as: UTF8.self)
            #expect(first.hasPrefix("HTTP/1.1 101 "), "\(text)")
            #expect(first.contains(#""client":""#), "the first read: \(first)")
            await connection.close()
        }
    }

    /// A client without `cf_connect` waits for the `101` before it sends its connect request, so
    /// the `101` goes out at once (a query of other parameters is no connect request either).
    @Test(arguments: ["/connection/uni_websocket", "/connection/uni_websocket?v=2"])
    func withoutAConnectRequestInTheURLThe101IsSentAtOnce(target: String) async throws {
        try await Self.withGateway { ports in
            let connection = try await WebSocketHandshakeIntegrationTests.RawConnection.open(port: ports.port)
            try await connection.send(Array(
                "GET \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".utf8))
            let head = await connection.text { $0.contains("\r\n\r\n") }
            #expect(head.hasPrefix("HTTP/1.1 101 "), "\(head)")
            let request = #"{"token":"\#(token())"}"#
            var frame = ByteBuffer()
            WebSocketTestClient.writeFrame(Array(request.utf8), to: &frame)
            try await connection.send(Array(frame.readableBytesView))
            let text = await connection.text { $0.contains("\"client\"") }
            #expect(text.contains(#""subs":{"chat:news""#), "\(text)")
            await connection.close()
        }
    }

    @Test func theConnectRequestMayBeTheFirstMessageAndLaterMessagesAreIgnored() async throws {
        try await Self.withGateway { ports in
            let client = try await WebSocketTestClient.connect(port: ports.port, target: "/connection/uni_websocket")
            var events = client.events.makeAsyncIterator()
            try await client.send(#"{"token":"\#(token())","name":"plain-js"}"#)
            #expect(await nextJSON(&events)?["connect"]?["subs"]?["chat:news"] != nil)
            try await client.send(#"{"id":2,"subscribe":{"channel":"chat:other"}}"#)
            try await client.send("{}")
            try await publish(ports, channel: "chat:other", data: "1")
            try await publish(ports, channel: "chat:news", data: "2")
            let next = try #require(await nextJSON(&events))
            #expect(next["channel"] == .string("chat:news") && next["pub"]?["data"] == .int(2), "\(next)")
            await client.close()
        }
    }

    @Test func aRefusedConnectIsExplainedByAPushAndTheCloseCode() async throws {
        try await Self.withGateway { ports in
            for (request, code) in [(#"{"token":"a.b.c"}"#, 3500), ("%zz", 3501), ("[1]", 3501)] {
                let target = request == "%zz" ? "/connection/uni_websocket?cf_connect=%zz" : Self.target(connect: request)
                let client = try await WebSocketTestClient.connect(port: ports.port, target: target)
                var events = client.events.makeAsyncIterator()
                let push = try #require(await nextJSON(&events), "\(request)")
                #expect(push["disconnect"]?["code"] == .int(Int64(code)), "\(request): \(push)")
                #expect(await events.next() == .close(UInt16(code)), "\(request)")
                await client.close()
            }
        }
    }

    /// The upgrade NIO's HTTP pipeline answers (a head over 8 KB is not read by hand) reaches the
    /// same endpoint, query and all.
    @Test func anUpgradeTheHTTPPipelineAnswersServesTheEndpointToo() async throws {
        try await Self.withGateway { ports in
            let connection = try await WebSocketHandshakeIntegrationTests.RawConnection.open(port: ports.port)
            let head =
                "GET \(Self.target(connect: #"{"token":"\#(token())"}"#)) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                + "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                + "X-Pad: \(String(repeating: "a", count: 9000))\r\n\r\n"
            try await connection.send(Array(head.utf8))
            let answer = await connection.text { $0.contains(#""client""#) }
            #expect(answer.hasPrefix("HTTP/1.1 101"), "\(answer.prefix(80))")
            #expect(answer.contains(#"{"connect":{"client":"#), "\(answer)")
            await connection.close()
        }
    }

    @Test func aClientThatAnswersWebSocketPingsStaysAndOneThatDoesNotIsClosed() async throws {
        // A pong timeout of 3 s leaves the answering client time to answer on a busy machine.
        try await Self.withGateway({ $0.pingInterval = 2; $0.pongTimeout = 3 }) { ports in
            let target = Self.target(connect: #"{"token":"\#(token())"}"#)
            let answering = try await WebSocketTestClient.connect(port: ports.port, target: target)
            let silent = try await WebSocketTestClient.connect(port: ports.port, target: target)
            let answered = Task {
                var pings = 0
                for await event in answering.events {
                    switch event {
                    case .ping:
                        pings += 1
                        try? await answering.pong()
                    case .text: continue
                    case .close, .end: return (pings, false)
                    }
                    if pings >= 3 { return (pings, true) }
                }
                return (pings, false)
            }
            var events = silent.events.makeAsyncIterator()
            var disconnect: JSONValue?
            var closeCode: UInt16?
            loop: while let event = await events.next() {
                switch event {
                case .text(let text):
                    if let push = JSONValue.parse(Array(text.utf8)), push["disconnect"] != nil { disconnect = push }
                case .ping: continue
                case .close(let code):
                    closeCode = code
                    break loop
                case .end: break loop
                }
            }
            #expect(closeCode == 3012)
            #expect(disconnect?["disconnect"]?["code"] == .int(3012))
            let (pings, stillOpen) = await answered.value
            #expect(stillOpen, "the answering client was closed after \(pings) pings")
            await answering.close()
            await silent.close()
        }
    }
}
