import NIOCore
import NIOEmbedded
import NIOWebSocket
import SwitchboardCore
import Testing

@testable import Gateway

/// One WebSocket connection's handler and transport on NIO's testing channel (no socket, no
/// Redis): fragments joined, the message size limit, pings, the closing handshake, and replies
/// written as frames from the frame encoder's context.
@Suite struct WebSocketHandlerTests {
    let token = GatewayTokens.mint(secret: "secret", user: "42", ttl: 3600)

    /// A connected testing channel with the gateway's pipeline after the upgrade: frame encoder,
    /// then `WebSocketHandler` (inbound frames are written to the handler directly).
    func open(_ node: Node, maxMessageSize: Int = 1000) async throws -> NIOAsyncTestingChannel {
        try await node.start()
        let channel = NIOAsyncTestingChannel()
        try await channel.testingEventLoop.executeInContext {
            let transport = WebSocketTransport(channel: channel, batcher: FlushBatcher(eventLoop: channel.eventLoop), maxQueueSize: 1 << 20)
            try channel.pipeline.syncOperations.addHandler(WebSocketFrameEncoder())
            try channel.pipeline.syncOperations.addHandler(WebSocketHandler(node: node, transport: transport, maxMessageSize: maxMessageSize))
        }
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8000))
        return channel
    }

    func send(_ channel: NIOAsyncTestingChannel, _ text: String, opcode: WebSocketOpcode = .text, fin: Bool = true) async throws {
        try await channel.writeInbound(WebSocketFrame(fin: fin, opcode: opcode, data: ByteBuffer(string: text)))
    }

    /// Server frames read back from the bytes written so far: (opcode, payload).
    static func frames(in bytes: ByteBuffer) -> [(opcode: UInt8, payload: ByteBuffer)] {
        var bytes = bytes
        var frames: [(opcode: UInt8, payload: ByteBuffer)] = []
        while let first = bytes.readInteger(as: UInt8.self), let second = bytes.readInteger(as: UInt8.self) {
            var length = Int(second & 0x7F)
            if length == 126 {
                guard let extended = bytes.readInteger(as: UInt16.self) else { break }
                length = Int(extended)
            } else if length == 127 {
                guard let extended = bytes.readInteger(as: UInt64.self) else { break }
                length = Int(extended)
            }
            guard let payload = bytes.readSlice(length: length) else { break }
            frames.append((first & 0x0F, payload))
        }
        return frames
    }

    /// Collects what the channel writes until `enough` holds for the frames (or 2 s pass).
    func written(
        _ channel: NIOAsyncTestingChannel, until enough: ([(opcode: UInt8, payload: ByteBuffer)]) -> Bool
    ) async throws -> [(opcode: UInt8, payload: ByteBuffer)] {
        var bytes = ByteBuffer()
        for _ in 0..<200 {
            await channel.testingEventLoop.run()
            while var buffer = try await channel.readOutbound(as: ByteBuffer.self) { bytes.writeBuffer(&buffer) }
            if enough(Self.frames(in: bytes)) { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        return Self.frames(in: bytes)
    }

    func closeCode(_ frame: (opcode: UInt8, payload: ByteBuffer)?) -> (code: UInt16?, reason: String?) {
        guard var payload = frame?.payload, frame?.opcode == 0x8 else { return (nil, nil) }
        return (payload.readInteger(as: UInt16.self), payload.readString(length: payload.readableBytes))
    }

    @Test func aFragmentedCommandIsJoinedAndAnsweredInATextFrame() async throws {
        let channel = try await open(makeNode())
        let connect = #"{"id":1,"connect":{"token":"\#(token)"}}"#
        let middle = connect.index(connect.startIndex, offsetBy: 20)
        try await send(channel, String(connect[..<middle]), fin: false)
        try await send(channel, String(connect[middle...]), opcode: .continuation)
        let frames = try await written(channel) { !$0.isEmpty }
        #expect(frames.map(\.opcode) == [0x1])
        let reply = frames.first.flatMap { JSONValue.parse($0.payload.readableBytesView) }
        #expect(reply?["id"] == .int(1))
        #expect(reply?["connect"]?["pong"] == .bool(true))
    }

    @Test(arguments: [false, true])
    func aMessageOverTheLimitCloses3501(fragmented: Bool) async throws {
        let channel = try await open(makeNode(), maxMessageSize: 100)
        if fragmented {
            try await send(channel, String(repeating: "x", count: 60), fin: false)
            try await send(channel, String(repeating: "x", count: 60), opcode: .continuation)
        } else {
            try await send(channel, String(repeating: "x", count: 101))
        }
        let frames = try await written(channel) { $0.contains { $0.opcode == 0x8 } }
        let close = closeCode(frames.last)
        #expect(close.code == 3501)
        #expect(close.reason == "message too large")
    }

    @Test func aMessageAtTheLimitIsTaken() async throws {
        let connect = #"{"id":1,"connect":{"token":"\#(token)"}}"#
        let channel = try await open(makeNode(), maxMessageSize: connect.utf8.count)
        try await send(channel, connect)
        let frames = try await written(channel) { !$0.isEmpty }
        #expect(frames.map(\.opcode) == [0x1])
    }

    @Test func pingsAreAnsweredWithTheirPayload() async throws {
        let channel = try await open(makeNode())
        try await send(channel, "are you there", opcode: .ping)
        let frames = try await written(channel) { !$0.isEmpty }
        #expect(frames.map(\.opcode) == [0xA])
        #expect(frames.first.map { String(buffer: $0.payload) } == "are you there")
    }

    @Test func thePeersCloseIsEchoedAndTheClientCleanedUp() async throws {
        let node = makeNode()
        let channel = try await open(node)
        try await send(channel, #"{"id":1,"connect":{"token":"\#(token)"}}"#)
        _ = try await written(channel) { !$0.isEmpty }
        #expect(node.hub.connectionCount == 1)

        var code = ByteBuffer()
        code.write(webSocketErrorCode: .goingAway)
        try await channel.writeInbound(WebSocketFrame(fin: true, opcode: .connectionClose, data: code))
        let frames = try await written(channel) { $0.contains { $0.opcode == 0x8 } }
        #expect(closeCode(frames.last).code == 1001)
        for _ in 0..<100 where node.hub.connectionCount > 0 || channel.isActive {
            await channel.testingEventLoop.run()
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(!channel.isActive)
        #expect(node.hub.connectionCount == 0)
    }
}
