import Foundation
import TestSupport
import Testing

@testable import Gateway

/// Clients that misbehave, over real sockets against a running gateway: each kind is disconnected
/// with the code the protocol gives it (or, for a forbidden subscription, refused without being
/// disconnected), while the connection itself was accepted normally.
@Suite struct MisbehavingClientTests {
    /// Small limits so each misbehaviour shows quickly: 10 commands/s with a burst of 20, 1 KB
    /// messages, a ping every second and a second to answer it.
    static func configure(_ configuration: inout GatewayConfiguration) {
        configuration.clientCommandRate = 10
        configuration.clientCommandBurst = 20
        configuration.maxMessageSize = 1024
        configuration.pingInterval = 1
        configuration.pongTimeout = 1
        var open = ChannelOptions()
        open.allowSubscribeForClient = true
        configuration.namespaces = [NamespaceConfiguration(name: "chat", options: open), NamespaceConfiguration(name: "secret")]
    }

    /// A connected client (its connect reply read), answering nothing else yet.
    static func connected(_ ports: GatewayServer.ListeningPorts, user: String) async throws -> (WebSocketTestClient, AsyncStream<WebSocketTestClient.Event>.AsyncIterator) {
        let client = try await WebSocketTestClient.connect(port: ports.port)
        let token = GatewayTokens.mint(secret: LiveGateway.tokenSecret, user: user, ttl: 600)
        try await client.send(#"{"id":1,"connect":{"token":"\#(token)"}}"#)
        var events = client.events.makeAsyncIterator()
        let reply = try #require(await events.next())
        guard case .text(let text) = reply, text.contains(#""id":1"#), text.contains(#""connect""#) else {
            Issue.record("connect was answered \(reply)")
            throw CancellationError()
        }
        return (client, events)
    }

    /// The close code the server sends, skipping the messages before it (pings, replies).
    static func closeCode(_ events: inout AsyncStream<WebSocketTestClient.Event>.AsyncIterator) async -> UInt16? {
        while let event = await events.next() {
            switch event {
            case .text, .ping: continue
            case .close(let code): return code
            case .end: return nil
            }
        }
        return nil
    }

    @Test func aFloodOfCommandsIsDisconnectedWith3013() async throws {
        try await LiveGateway.with(Self.configure) { ports in
            var (client, events) = try await Self.connected(ports, user: "flooder")
            try await client.send((2..<202).map { #"{"id":\#($0),"presence":{"channel":"chat:a"}}"# })
            #expect(await Self.closeCode(&events) == UInt16(Disconnect.tooManyRequests.code))
            await client.close()
        }
    }

    @Test func anOversizedFrameIsDisconnectedWithTheMessageSizeCode() async throws {
        try await LiveGateway.with(Self.configure) { ports in
            var (client, events) = try await Self.connected(ports, user: "oversized")
            let data = String(repeating: "x", count: 4096)
            try await client.send(#"{"id":2,"publish":{"channel":"chat:a","data":"\#(data)"}}"#)
            #expect(await Self.closeCode(&events) == UInt16(Disconnect.messageTooLarge.code))
            await client.close()
        }
    }

    @Test func aClientThatNeverAnswersPingsIsDisconnectedWith3012() async throws {
        try await LiveGateway.with(Self.configure) { ports in
            var (client, events) = try await Self.connected(ports, user: "silent")
            // Reads the pings and answers none of them.
            #expect(await Self.closeCode(&events) == UInt16(Disconnect.noPong.code))
            await client.close()
        }
    }

    @Test func aForbiddenSubscriptionIsRefusedWith103AndTheConnectionStays() async throws {
        try await LiveGateway.with(Self.configure) { ports in
            var (client, events) = try await Self.connected(ports, user: "curious")
            try await client.send(#"{"id":2,"subscribe":{"channel":"secret:plans"}}"#)
            try await client.send(#"{"id":3,"subscribe":{"channel":"chat:lobby"}}"#)
            var answers: [String: String] = [:]
            while answers.count < 2, let event = await events.next() {
                guard case .text(let text) = event else {
                    Issue.record("the connection ended: \(event)")
                    break
                }
                if text.hasPrefix(#"{"id":2,"#) { answers["2"] = text }
                if text.hasPrefix(#"{"id":3,"#) { answers["3"] = text }
                if text == "{}" { try await client.send("{}") }  // pong
            }
            #expect(answers["2"]?.contains(#""error":{"code":103"#) == true)
            #expect(answers["3"]?.contains(#""subscribe""#) == true)
            await client.close()
        }
    }
}
