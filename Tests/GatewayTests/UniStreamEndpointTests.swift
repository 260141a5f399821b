import Foundation
import NIOCore
import SwitchboardCore
import Synchronization
import TestSupport
import Testing

@testable import Gateway

/// `/connection/uni_sse` and `/connection/uni_http_stream` on real sockets over the Redis engine:
/// the connect request from the URL or the body, pushes streamed in the response's framing,
/// refusals answered as JSON before any stream, pings that ask for no pong, and the disconnect
/// push before the stream ends.
@Suite struct UniStreamEndpointTests {
    typealias RawConnection = WebSocketHandshakeIntegrationTests.RawConnection

    func withGateway(
        _ configure: @escaping (inout GatewayConfiguration) -> Void = { _ in },
        _ body: (_ ports: GatewayServer.ListeningPorts) async throws -> Void
    ) async throws {
        try await UniWebSocketEndpointTests.withGateway(configure, body)
    }

    static func token(user: String = "7", channels: [String] = ["chat:news"]) -> String {
        GatewayTokens.mint(secret: LiveGateway.tokenSecret, user: user, ttl: 3600, channels: channels)
    }

    static func encoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
    }

    /// Sends a request and returns the connection.
    static func request(
        _ ports: GatewayServer.ListeningPorts, _ method: String, _ target: String, body: String = "", headers: String = ""
    ) async throws -> RawConnection {
        let connection = try await RawConnection.open(port: ports.port)
        let length = body.isEmpty ? "" : "Content-Length: \(body.utf8.count)\r\n"
        try await connection.send(Array("\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\n\(headers)\(length)\r\n\(body)".utf8))
        return connection
    }

    func publish(_ ports: GatewayServer.ListeningPorts, channel: String, data: String) async throws {
        let answer = try await Curl.request(
            "POST", "http://127.0.0.1:\(ports.internalPort)/api/\(channel.isEmpty ? "disconnect" : "publish")",
            headers: ["X-API-Key": LiveGateway.apiKey], body: channel.isEmpty ? data : #"{"channel":"\#(channel)","data":\#(data)}"#)
        #expect(answer.status == 200, "\(answer.body)")
    }

    /// On both socket layers: the gateway's own loops start a plain `EventSource` stream
    /// themselves, NIO's handshake handler does on the other.
    @Test(arguments: [GatewayConfiguration.SocketLayer.own, .nio])
    func anEventSourceRequestStreamsTheConnectPushAndPublications(socketLayer: GatewayConfiguration.SocketLayer) async throws {
        try await withGateway({ $0.socketLayer = socketLayer }) { ports in
            let connect = Self.encoded(#"{"token":"\#(Self.token())"}"#)
            let stream = try await Self.request(
                ports, "GET", "/connection/uni_sse?cf_connect=\(connect)", headers: "Origin: http://127.0.0.1:9\r\nAccept: text/event-stream\r\n")
            let opened = await stream.text { $0.contains(#"data: {"connect":"#) }
            #expect(opened.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(opened.prefix(300))")
            let head = opened.lowercased()
            #expect(head.contains("content-type: text/event-stream"))
            #expect(head.contains("access-control-allow-origin: http://127.0.0.1:9"))
            #expect(opened.contains(#""subs":{"chat:news":"#))
            try await publish(ports, channel: "chat:news", data: #"{"n":1}"#)
            let streamed = await stream.text { $0.contains(#""pub""#) }
            #expect(streamed.contains(#"data: {"channel":"chat:news","pub":{"data":{"n":1},"offset":1}}"#), "\(streamed)")
            // The server API's disconnect: a push, then the stream ends.
            try await publish(ports, channel: "", data: #"{"user":"7"}"#)
            let ended = await stream.text { $0.contains(#""disconnect""#) }
            #expect(ended.contains(#"data: {"disconnect":{"code":"#), "\(ended)")
            #expect(await stream.closes(within: .seconds(10)))
        }
    }

    @Test func theJSONStreamTakesThePostedConnectRequest() async throws {
        try await withGateway { ports in
            let stream = try await Self.request(ports, "POST", "/connection/uni_http_stream", body: #"{"token":"\#(Self.token())"}"#)
            let opened = await stream.text { $0.contains(#"{"connect":"#) }
            #expect(opened.lowercased().contains("content-type: application/json"), "\(opened.prefix(300))")
            try await publish(ports, channel: "chat:news", data: "2")
            let streamed = await stream.text { $0.contains(#""pub""#) }
            #expect(streamed.contains(#"{"channel":"chat:news","pub":{"data":2,"offset":1}}"# + "\n"), "\(streamed)")
            await stream.close()
        }
    }

    @Test func refusalsAreJSONAnswersBeforeAnyStream() async throws {
        try await withGateway { ports in
            let expired = GatewayTokens.mint(secret: LiveGateway.tokenSecret, user: "7", ttl: 60, now: Date().addingTimeInterval(-3600))
            let cases: [(method: String, target: String, body: String, headers: String, status: String, code: String)] = [
                ("GET", "/connection/uni_http_stream", "", "", "405", "method_not_allowed"),
                ("PUT", "/connection/uni_sse", "{}", "", "405", "method_not_allowed"),
                ("GET", "/connection/uni_sse", "", "", "400", "connect_request_required"),
                ("GET", "/connection/uni_sse?cf_connect=%zz", "", "", "400", "connect_request_required"),
                ("GET", "/connection/uni_sse?cf_connect=\(Self.encoded(#"{"token":"a.b.c"}"#))", "", "", "401", "invalid_token"),
                ("POST", "/connection/uni_sse", #"{"token":"\#(expired)"}"#, "", "401", "connection_expired"),
                ("POST", "/connection/uni_http_stream", "not json", "", "400", "bad_request"),
                ("GET", "/connection/uni_sse?cf_connect=%7B%7D", "", "Origin: https://evil.example\r\n", "403", "origin_not_allowed"),
                ("POST", "/connection/uni_http_stream", String(repeating: " ", count: 70_000), "", "413", "connect_request_too_large"),
            ]
            for check in cases {
                let connection = try await Self.request(ports, check.method, check.target, body: check.body, headers: check.headers)
                let answer = await connection.text { $0.contains("}}") }
                #expect(answer.hasPrefix("HTTP/1.1 \(check.status) "), "\(check.method) \(check.target): \(answer.prefix(200))")
                let body = answer.components(separatedBy: "\r\n\r\n").dropFirst().joined()
                #expect(JSONValue.parse(Array(body.utf8))?["error"]?["code"]?.stringValue == check.code, "\(check.target): \(body)")
                if check.status == "405" {
                    let allow = check.target.hasSuffix("uni_sse") ? "GET, POST, OPTIONS" : "POST, OPTIONS"
                    #expect(answer.contains("\r\nAllow: \(allow)\r\n"), "\(check.target): \(answer.prefix(300))")
                }
                #expect(await connection.closes(within: .seconds(10)))
            }
            // The public port's other answers are as before.
            let health = try await Curl.request("GET", "http://127.0.0.1:\(ports.port)/healthz")
            #expect(health.status == 200)
            let elsewhere = try await Curl.request("GET", "http://127.0.0.1:\(ports.port)/elsewhere")
            #expect(elsewhere.status == 404 && JSONValue.parse(Array(elsewhere.body.utf8))?["error"]?["code"]?.stringValue == "not_found")
        }
    }

    /// A head that arrived in pieces left the handshake handler before it ended; once read, the
    /// stream outlives `handshake_timeout`.
    @Test func aStreamWhoseHeadCameInPiecesOutlivesTheHandshakeTimeout() async throws {
        // 3 s: time for both parts of the head to arrive on a machine busy with every suite at once.
        try await withGateway({ $0.handshakeTimeout = 3 }) { ports in
            let connection = try await RawConnection.open(port: ports.port)
            let target = "/connection/uni_sse?cf_connect=\(Self.encoded(#"{"token":"\#(Self.token())"}"#))"
            try await connection.send(Array("GET \(target) HTTP/1.1\r\n".utf8))
            try await Task.sleep(for: .milliseconds(200))
            try await connection.send(Array("Host: 127.0.0.1\r\n\r\n".utf8))
            let opened = await connection.text { $0.contains(#"{"connect":"#) }
            #expect(opened.hasPrefix("HTTP/1.1 200"), "\(opened.prefix(200))")
            try await Task.sleep(for: .milliseconds(3500))
            #expect(!connection.isClosed, "the stream was closed at the handshake timeout")
            await connection.close()
        }
    }

    /// `SocketWriteTests`' configuration on `socketLayer`.
    static func configure(queueLimit: Int, socketLayer: GatewayConfiguration.SocketLayer) -> (inout GatewayConfiguration) -> Void {
        { configuration in
            SocketWriteTests.configure(queueLimit: queueLimit)(&configuration)
            configuration.socketLayer = socketLayer
        }
    }

    /// A stream of `chat:firehose` with a small receive buffer that has stopped reading (its
    /// channel's `autoRead` off), and a client to publish with.
    static func pausedFirehoseReader(
        _ ports: GatewayServer.ListeningPorts
    ) async throws -> (RawConnection, any NIOCore.Channel, WebSocketTestClient) {
        let connection = try await RawConnection.open(port: ports.port, receiveBuffer: 8192)
        let target = "/connection/uni_sse?cf_connect=\(encoded(#"{"token":"\#(token(channels: ["chat:firehose"]))"}"#))"
        try await connection.send(Array("GET \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8))
        _ = await connection.text { $0.contains(#"{"connect":"#) }
        let channel = try #require(connection.channel.withLock { $0 })
        try await channel.setOption(ChannelOptions.autoRead, value: false).get()
        let (publisher, _) = try await SocketWriteTests.subscribed(ports, channel: "chat:other", user: "publisher")
        return (connection, channel, publisher)
    }

    /// A stream's reader that stops reading is cut off past the queue limit (3008), as on a WebSocket.
    @Test(arguments: [GatewayConfiguration.SocketLayer.own, .nio])
    func aStreamReaderFartherBehindThanTheQueueLimitIsDisconnected(socketLayer: GatewayConfiguration.SocketLayer) async throws {
        try await LiveGateway.with(Self.configure(queueLimit: 256 << 10, socketLayer: socketLayer)) { ports in
            let (connection, channel, publisher) = try await Self.pausedFirehoseReader(ports)
            await SocketWriteTests.publish(0..<1000, from: publisher, channel: "chat:firehose")
            try await SocketWriteTests.waitFor("switchboard_gateway_slow_disconnects_total", ports)
            #expect(try await SocketWriteTests.counter("switchboard_gateway_slow_disconnects_total", ports) == 1)
            // It reads again (the server may have closed the connection by then).
            try? await channel.setOption(ChannelOptions.autoRead, value: true).get()
            #expect(await connection.closes(within: .seconds(20)))
            await publisher.close()
        }
    }

    /// The events of a chunked `text/event-stream` body, its chunk sizes checked: nil when a
    /// chunk's size does not match its bytes.
    static func events(ofChunked body: [UInt8]) -> [String]? {
        var stream: [UInt8] = []
        var index = 0
        while index < body.count {
            guard let lineEnd = (index..<body.count - 1).first(where: { body[$0] == 13 && body[$0 + 1] == 10 }),
                let size = Int(String(decoding: body[index..<lineEnd], as: UTF8.self), radix: 16)
            else { break }
            let start = lineEnd + 2
            guard start + size + 2 <= body.count else { break }
            guard body[start + size] == 13, body[start + size + 1] == 10 else { return nil }
            stream += body[start..<start + size]
            index = start + size + 2
        }
        return String(decoding: stream, as: UTF8.self).components(separatedBy: "\n\n").filter { !$0.isEmpty }
    }

    /// A reader that falls behind (the socket takes part of a message, NIO the rest) and then
    /// catches up gets every publication whole and in order, in well-formed chunks.
    @Test(arguments: [GatewayConfiguration.SocketLayer.own, .nio])
    func aReaderThatFallsBehindAndCatchesUpGetsEveryEventInOrder(socketLayer: GatewayConfiguration.SocketLayer) async throws {
        try await LiveGateway.with(Self.configure(queueLimit: 16 << 20, socketLayer: socketLayer)) { ports in
            let (connection, channel, publisher) = try await Self.pausedFirehoseReader(ports)
            let count = 1000
            await SocketWriteTests.publish(0..<count, from: publisher, channel: "chat:firehose")
            try await Task.sleep(for: .milliseconds(500))
            try await channel.setOption(ChannelOptions.autoRead, value: true).get()
            // Until the last publication's chunk has arrived whole: 8 MB, so only the tail is looked
            // at each time (its start comes first; its chunk ends with the event's blank line).
            let last = Array(#"{"n":\#(count - 1),"#.utf8)
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                let arrived = connection.received.withLock { bytes -> Bool in
                    guard let start = bytes.suffix(20_000).firstRange(of: last) else { return false }
                    return bytes[start.upperBound...].firstRange(of: Array("\n\n\r\n".utf8)) != nil
                }
                if arrived { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            let received = connection.received.withLock { $0 }
            let headEnd = try #require(received.firstRange(of: Array("\r\n\r\n".utf8))).upperBound
            guard let events = Self.events(ofChunked: Array(received[headEnd...])) else {
                Issue.record("a chunk's size did not match its bytes")
                return
            }
            let numbers = events.dropFirst().compactMap { event -> Int? in
                guard let data = event.components(separatedBy: "data: ").last else { return nil }
                return JSONValue.parse(Array(data.utf8))?["pub"]?["data"]?["n"]?.int64Value.map { Int($0) }
            }
            #expect(events.first?.contains(#"data: {"connect":"#) == true)
            #expect(numbers == Array(0..<count), "\(numbers.count) events, first out of place at \(zip(numbers, 0..<count).first { $0 != $1 }.map { "\($0)" } ?? "-")")
            #expect(!connection.isClosed)
            await connection.close()
            await publisher.close()
        }
    }

    /// An HTTP/1.0 client (no chunked coding) gets the events as the plain body, ended by the close.
    @Test func anHTTP10StreamIsAPlainBodyEndedByTheClose() async throws {
        try await withGateway { ports in
            let connection = try await RawConnection.open(port: ports.port)
            let target = "/connection/uni_sse?cf_connect=\(Self.encoded(#"{"token":"\#(Self.token())"}"#))"
            try await connection.send(Array("GET \(target) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8))
            let opened = await connection.text { $0.contains(#"{"connect":"#) }
            #expect(opened.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(opened.prefix(300))")
            #expect(!opened.lowercased().contains("transfer-encoding"))
            try await publish(ports, channel: "chat:news", data: "3")
            try await publish(ports, channel: "", data: #"{"user":"7"}"#)
            #expect(await connection.closes(within: .seconds(10)))
            let body = String(decoding: connection.received.withLock { $0 }, as: UTF8.self).components(separatedBy: "\r\n\r\n").dropFirst().joined()
            // Pings (`event: ping`) come every `ping_interval`, which a slow run reaches.
            let events = body.components(separatedBy: "\n\n").filter { !$0.isEmpty && !$0.hasPrefix("event: ping") }
            #expect(events.count == 3, "\(body)")
            #expect(events.dropFirst().first?.hasSuffix("\n" + #"data: {"channel":"chat:news","pub":{"data":3,"offset":1}}"#) == true)
            #expect(events.last?.hasPrefix(#"data: {"disconnect":"#) == true)
        }
    }

    /// The `id:` of the last event with one in `text`.
    static func lastEventID(in text: String) -> String? {
        // "\r\n" (after a chunk's size) is one Character, which a split on "\n" would not see.
        text.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n").last { $0.hasPrefix("id: ") }
            .map { String($0.dropFirst(4)) }
    }

    /// An `EventSource` that reconnects sends the id of the last event it read; the new stream's
    /// connect push brings what was published in between, and moves the id on.
    @Test(arguments: [GatewayConfiguration.SocketLayer.own, .nio])
    func aReconnectingEventSourceRecoversFromItsLastEventID(socketLayer: GatewayConfiguration.SocketLayer) async throws {
        try await withGateway({ $0.socketLayer = socketLayer }) { ports in
            let target = "/connection/uni_sse?cf_connect=\(Self.encoded(#"{"token":"\#(Self.token())"}"#))"
            let first = try await Self.request(ports, "GET", target)
            let opened = await first.text { $0.contains(#"{"connect":"#) }
            let epoch = try #require(Self.lastEventID(in: opened)?.components(separatedBy: "/").last, "\(opened)")
            #expect(Self.lastEventID(in: opened) == "chat:news/0/\(epoch)")
            try await publish(ports, channel: "chat:news", data: #"{"n":1}"#)
            let streamed = await first.text { $0.contains(#""pub""#) }
            #expect(streamed.contains("id: chat:news/1/\(epoch)\ndata: {\"channel\":\"chat:news\""), "\(streamed)")
            let lastID = try #require(Self.lastEventID(in: streamed))
            await first.close()
            for n in 2...3 { try await publish(ports, channel: "chat:news", data: #"{"n":\#(n)}"#) }

            let second = try await Self.request(ports, "GET", target, headers: "Last-Event-ID: \(lastID)\r\n")
            let recovered = await second.text { $0.contains(#"{"connect":"#) && $0.contains("\n\n") }
            let connect = try #require(recovered.components(separatedBy: "data: ").dropFirst().first?.components(separatedBy: "\n").first)
            let subscription = try #require(JSONValue.parse(Array(connect.utf8))?["connect"]?["subs"]?["chat:news"], "\(connect)")
            #expect(subscription["recovered"]?.boolValue == true, "\(connect)")
            var numbers: [Int64] = []
            if case .array(let publications)? = subscription["publications"] { numbers = publications.compactMap { $0["data"]?["n"]?.int64Value } }
            #expect(numbers == [2, 3], "\(connect)")
            #expect(Self.lastEventID(in: recovered) == "chat:news/3/\(epoch)")
            // Positions the connect request names itself win over the header's.
            await second.close()
            let explicit = Self.encoded(#"{"token":"\#(Self.token())","subs":{"chat:news":{"recover":true,"offset":2,"epoch":"\#(epoch)"}}}"#)
            let third = try await Self.request(ports, "GET", "/connection/uni_sse?cf_connect=\(explicit)", headers: "Last-Event-ID: \(lastID)\r\n")
            let fromTwo = await third.text { $0.contains(#"{"connect":"#) && $0.contains("\n\n") }
            #expect(fromTwo.contains(#""publications":[{"data":{"n":3}"#) && !fromTwo.contains(#"{"n":2}"#), "\(fromTwo)")
            await third.close()
        }
    }

    @Test func aLastEventIDThatIsNotOursIsIgnored() async throws {
        try await withGateway { ports in
            let target = "/connection/uni_sse?cf_connect=\(Self.encoded(#"{"token":"\#(Self.token())"}"#))"
            let stream = try await Self.request(ports, "GET", target, headers: "Last-Event-ID: 12345\r\n")
            let opened = await stream.text { $0.contains(#"{"connect":"#) }
            #expect(opened.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(opened.prefix(200))")
            #expect(!opened.contains(#""recovered""#))
            await stream.close()
        }
    }

    /// A browser asks before a cross-origin `fetch` that `POST`s a JSON body or sets `Last-Event-ID`;
    /// an allowed origin gets a `204` naming what it may send.
    @Test func aCORSPreflightIsAnsweredForAnAllowedOrigin() async throws {
        try await withGateway({ $0.allowedOrigins = ["https://app.example"] }) { ports in
            for path in [UniStreamHandler.eventStreamPath, UniStreamHandler.jsonStreamPath] {
                let preflight =
                    "Origin: https://app.example\r\nAccess-Control-Request-Method: POST\r\n"
                    + "Access-Control-Request-Headers: content-type, last-event-id\r\n"
                let allowed = try await Self.request(ports, "OPTIONS", path, headers: preflight)
                let answer = await allowed.text { $0.contains("\r\n\r\n") }.lowercased()
                #expect(answer.hasPrefix("http/1.1 204 "), "\(answer)")
                #expect(answer.contains("access-control-allow-origin: https://app.example\r\n"))
                #expect(answer.contains("access-control-allow-headers: content-type, last-event-id\r\n"))
                #expect(answer.contains("access-control-allow-methods: \(path == UniStreamHandler.eventStreamPath ? "get, post" : "post")\r\n"))
                // The connection stays for the request the preflight was for.
                try await allowed.send(Array("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8))
                let health = await allowed.text { $0.contains("200 OK") && $0.hasSuffix("ok\n") }
                #expect(health.contains("HTTP/1.1 200 OK\r\n") && health.hasSuffix("ok\n"), "\(health)")
                await allowed.close()
                let refused = try await Self.request(ports, "OPTIONS", path, headers: "Origin: https://evil.example\r\n")
                let refusal = await refused.text { $0.contains("}}") }
                #expect(refusal.hasPrefix("HTTP/1.1 403 "), "\(refusal)")
                #expect(await refused.closes(within: .seconds(10)))
            }
        }
    }

    @Test func pingsAskForNoPongAndTheStreamStays() async throws {
        try await withGateway({ $0.pingInterval = 1; $0.pongTimeout = 1 }) { ports in
            let stream = try await Self.request(ports, "GET", "/connection/uni_sse?cf_connect=\(Self.encoded(#"{"token":"\#(Self.token())"}"#))")
            _ = await stream.text { $0.contains(#"{"connect":"#) }
            try await Task.sleep(for: .seconds(4))
            let text = await stream.text { $0.components(separatedBy: "event: ping\ndata:\n\n").count > 2 }
            #expect(text.components(separatedBy: "event: ping\ndata:\n\n").count > 2, "\(text)")
            #expect(!text.contains("disconnect"))
            #expect(!stream.isClosed)
            await stream.close()
        }
    }
}

/// docs/gateway-openapi.yaml lists the public port's HTTP routes as the gateway serves them.
@Suite struct GatewayOpenAPITests {
    @Test func theDocumentListsThePublicPortsHTTPRoutes() throws {
        #expect(
            try OpenAPIDocument.routes("gateway-openapi.yaml") == [
                "GET /healthz", "GET \(UniStreamHandler.eventStreamPath)", "POST \(UniStreamHandler.eventStreamPath)",
                "OPTIONS \(UniStreamHandler.eventStreamPath)", "OPTIONS \(UniStreamHandler.jsonStreamPath)",
                "POST \(UniStreamHandler.jsonStreamPath)",
            ])
    }
}
