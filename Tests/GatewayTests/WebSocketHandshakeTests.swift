import Foundation
import NIOCore
import NIOPosix
import Synchronization
import TestSupport
import Testing

@testable import Gateway

/// The opening handshake on the public port over raw sockets: the upgrade is answered however its
/// bytes arrive, frames sent right behind it are read, and whatever is not a plain upgrade gets the
/// HTTP pipeline's answers (404 for a refused upgrade, `/healthz`, keep-alive).
@Suite struct WebSocketHandshakeIntegrationTests {
    static let upgrade =
        "GET /connection/websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    static let switching =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        + "Connection: upgrade\r\n\r\n"

    /// A TCP connection that keeps every byte it receives.
    final class RawConnection: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received = Mutex<[UInt8]>([])
        /// Each read's bytes, in order.
        let reads = Mutex<[[UInt8]]>([])
        let closed = Atomic<Bool>(false)
        let channel = Mutex<(any Channel)?>(nil)

        /// `receiveBuffer`: `SO_RCVBUF` in bytes, for a reader whose socket should fill quickly.
        static func open(port: Int, receiveBuffer: Int? = nil) async throws -> RawConnection {
            let connection = RawConnection()
            var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            if let receiveBuffer {
                bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer))
            }
            let channel = try await bootstrap
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(connection) }
                }
                .connect(host: "127.0.0.1", port: port).get()
            connection.channel.withLock { $0 = channel }
            return connection
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = Array(unwrapInboundIn(data).readableBytesView)
            received.withLock { $0 += bytes }
            reads.withLock { $0.append(bytes) }
        }

        func channelInactive(context: ChannelHandlerContext) { closed.store(true, ordering: .releasing) }

        var isClosed: Bool { closed.load(ordering: .acquiring) }

        /// Whether the server closes the connection within `limit`.
        func closes(within limit: Duration) async -> Bool {
            let deadline = ContinuousClock.now + limit
            while !isClosed, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
            return isClosed
        }

        func send(_ bytes: [UInt8]) async throws {
            let channel = try #require(channel.withLock { $0 })
            try await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
        }

        /// What has arrived once `done` holds for it (or after 10 s).
        func text(until done: (String) -> Bool) async -> String {
            let deadline = ContinuousClock.now + .seconds(10)
            while true {
                let text = String(decoding: received.withLock { $0 }, as: UTF8.self)
                if done(text) || ContinuousClock.now > deadline { return text }
                try? await Task.sleep(for: .milliseconds(10))
            }
        }

        func close() async { try? await channel.withLock { $0 }?.close().get() }
    }

    static func connectFrame() -> [UInt8] {
        let token = GatewayTokens.mint(secret: LiveGateway.tokenSecret, user: "7", ttl: 600)
        var frame = ByteBuffer()
        WebSocketTestClient.writeFrame(Array(#"{"id":1,"connect":{"token":"\#(token)"}}"#.utf8), to: &frame)
        return Array(frame.readableBytesView)
    }

    static func configure(_ socketLayer: GatewayConfiguration.SocketLayer, handshakeTimeout: Int) -> (inout GatewayConfiguration) -> Void {
        { configuration in
            configuration.socketLayer = socketLayer
            configuration.handshakeTimeout = handshakeTimeout
        }
    }

    @Test(arguments: [GatewayConfiguration.SocketLayer.own, .nio])
    func anUpgradeArrivingAByteAtATimeIsAnsweredAndItsConnectRead(socketLayer: GatewayConfiguration.SocketLayer) async throws {
        // A long handshake timeout: ~150 round trips may take seconds while the whole suite starts
        // at once, and the timeout has a test of its own (below).
        try await LiveGateway.with(Self.configure(socketLayer, handshakeTimeout: 120)) { ports in
            let connection = try await RawConnection.open(port: ports.port)
            for byte in Self.upgrade.utf8 { try await connection.send([byte]) }
            let answer = await connection.text { $0.hasSuffix("\r\n\r\n") }
            #expect(answer == Self.switching)
            try await connection.send(Self.connectFrame())
            let reply = await connection.text { $0.contains(#""client""#) }
            #expect(reply.contains(#""id":1"#) && reply.contains(#""connect""#), "\(reply)")
            await connection.close()
        }
    }

    @Test(arguments: [GatewayConfiguration.SocketLayer.own, .nio])
    func framesSentWithTheUpgradeAreRead(socketLayer: GatewayConfiguration.SocketLayer) async throws {
        try await LiveGateway.with({ $0.socketLayer = socketLayer }) { ports in
            let connection = try await RawConnection.open(port: ports.port)
            try await connection.send(Array(Self.upgrade.utf8) + Self.connectFrame())
            let reply = await connection.text { $0.contains(#""client""#) }
            #expect(reply.hasPrefix(Self.switching))
            #expect(reply.contains(#""id":1"#) && reply.contains(#""connect""#), "\(reply)")
            await connection.close()
        }
    }

    /// `handshake_timeout`: a connection that sends nothing, or a head that never ends, is closed;
    /// one that upgraded in time is not.
    @Test(arguments: [GatewayConfiguration.SocketLayer.own, .nio])
    func aConnectionThatDoesNotFinishItsHeadInTimeIsClosed(socketLayer: GatewayConfiguration.SocketLayer) async throws {
        // 3 s: time to open the four connections and send their bytes before the timeout, on a
        // machine busy with every suite at once (with 1 s, a CI run found one already closed).
        try await LiveGateway.with(Self.configure(socketLayer, handshakeTimeout: 3)) { ports in
            let silent = try await RawConnection.open(port: ports.port)
            let stalled = try await RawConnection.open(port: ports.port)
            try await stalled.send(Array("GET /connection/websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n".utf8))
            let long = try await RawConnection.open(port: ports.port)
            try await long.send(Array(("GET /healthz HTTP/1.1\r\nX-Pad: " + String(repeating: "a", count: 9000)).utf8))
            let upgraded = try await RawConnection.open(port: ports.port)
            try await upgraded.send(Array(Self.upgrade.utf8) + Self.connectFrame())
            _ = await upgraded.text { $0.contains(#""client""#) }

            #expect(await silent.closes(within: .seconds(15)), "a connection that sent nothing was closed")
            #expect(await stalled.closes(within: .seconds(15)), "a connection whose head stopped was closed")
            #expect(await long.closes(within: .seconds(15)), "a connection whose head went on past 8 KB was closed")
            try await Task.sleep(for: .milliseconds(3500))
            #expect(!upgraded.isClosed, "an upgraded connection outlives the handshake timeout")
            await upgraded.close()
        }
    }

    @Test func whatIsNotAPlainUpgradeIsAnsweredOverHTTP() async throws {
        try await LiveGateway.with({ $0.allowedOrigins = ["https://app.example"] }) { ports in
            // Two health checks on one keep-alive connection, the second sent before the first is answered.
            let health = try await RawConnection.open(port: ports.port)
            try await health.send(Array("GET /healthz HTTP/1.1\r\nHost: h\r\n\r\nGET /healthz HTTP/1.1\r\nHost: h\r\n\r\n".utf8))
            let answers = await health.text { $0.components(separatedBy: "HTTP/1.1 200").count == 3 }
            #expect(answers.components(separatedBy: "HTTP/1.1 200").count == 3, "\(answers)")
            await health.close()

            // Refused upgrades: an unsupported version, an origin not allowed.
            for refused in [
                Self.upgrade.replacingOccurrences(of: "Version: 13", with: "Version: 12"),
                Self.upgrade.replacingOccurrences(of: "Host: 127.0.0.1\r\n", with: "Host: 127.0.0.1\r\nOrigin: https://evil.example\r\n"),
            ] {
                let connection = try await RawConnection.open(port: ports.port)
                try await connection.send(Array(refused.utf8))
                let answer = await connection.text { $0.contains("\r\n\r\n") }
                #expect(answer.hasPrefix("HTTP/1.1 404"), "\(refused) was answered \(answer)")
                await connection.close()
            }

            // An allowed origin upgrades; so does an upgrade the handshake handler leaves to NIO's
            // upgrader (a repeated Host), which takes it.
            for accepted in [
                Self.upgrade.replacingOccurrences(of: "Host: 127.0.0.1\r\n", with: "Host: 127.0.0.1\r\nOrigin: https://app.example\r\n"),
                Self.upgrade.replacingOccurrences(of: "Host: 127.0.0.1\r\n", with: "Host: 127.0.0.1\r\nHost: 127.0.0.1\r\n"),
            ] {
                let connection = try await RawConnection.open(port: ports.port)
                try await connection.send(Array(accepted.utf8) + Self.connectFrame())
                let reply = await connection.text { $0.contains(#""client""#) }
                #expect(reply.hasPrefix("HTTP/1.1 101"), "\(accepted) was answered \(reply)")
                #expect(reply.contains(#""connect""#))
                await connection.close()
            }
        }
    }
}
