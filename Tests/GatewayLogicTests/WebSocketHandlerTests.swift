import NIOCore
import NIOEmbedded
import NIOWebSocket
import SwitchboardCore
import Testing

@testable import Gateway

/// One WebSocket connection's handler and transport on NIO's testing channel (no socket, no
/// Redis): client frames read from masked bytes, fragments joined, the message size limit, pings,
/// the closing handshake, and replies written as frames.
@Suite struct WebSocketHandlerTests {
    let token = GatewayTokens.mint(secret: "secret", user: "42", ttl: 3600)

    /// A connected testing channel with the gateway's pipeline after the upgrade: `WebSocketHandler`
    /// alone (client frames are written to it as bytes).
    func open(_ node: Node, maxMessageSize: Int = 1000) async throws -> NIOAsyncTestingChannel {
        try await node.start()
        let channel = NIOAsyncTestingChannel()
        try await channel.testingEventLoop.executeInContext {
            let transport = WebSocketTransport(channel: channel, batcher: FlushBatcher(eventLoop: channel.eventLoop), maxQueueSize: 1 << 20)
            try channel.pipeline.syncOperations.addHandler(
                WebSocketHandler(node: node, transport: transport, maxMessageSize: maxMessageSize, maxFrameSize: max(maxMessageSize, 1024)))
        }
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8000))
        return channel
    }

    func send(_ channel: NIOAsyncTestingChannel, _ text: String, opcode: UInt8 = 0x1, fin: Bool = true) async throws {
        try await channel.writeInbound(Self.clientFrame(ByteBuffer(string: text), opcode: opcode, fin: fin))
    }

    /// A client frame as a browser sends it: masked with a key of its own.
    static func clientFrame(_ payload: ByteBuffer, opcode: UInt8 = 0x1, fin: Bool = true) -> ByteBuffer {
        var frame = ByteBuffer()
        frame.writeInteger((fin ? 0x80 : 0) | opcode)
        let length = payload.readableBytes
        if length < 126 {
            frame.writeInteger(0x80 | UInt8(length))
        } else if length <= 0xFFFF {
            frame.writeInteger(UInt8(0x80 | 126))
            frame.writeInteger(UInt16(length))
        } else {
            frame.writeInteger(UInt8(0x80 | 127))
            frame.writeInteger(UInt64(length))
        }
        let key: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
        frame.writeBytes(key)
        frame.writeBytes(payload.readableBytesView.enumerated().map { $0.element ^ key[$0.offset % 4] })
        return frame
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
        try await send(channel, String(connect[middle...]), opcode: 0x0)
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
            try await send(channel, String(repeating: "x", count: 60), opcode: 0x0)
        } else {
            try await send(channel, String(repeating: "x", count: 101))
        }
        let frames = try await written(channel) { $0.contains { $0.opcode == 0x8 } }
        let close = closeCode(frames.last)
        #expect(close.code == 3501)
        #expect(close.reason == "message too large")
    }

    /// A frame no client may send (here a fragmented ping) is a bad request, and one announced over
    /// the frame limit is refused from its header, before its payload arrives.
    @Test func framesTheReaderRefusesClose3501() async throws {
        let malformed = try await open(makeNode())
        try await send(malformed, "ping", opcode: 0x9, fin: false)
        let refused = closeCode(try await written(malformed) { $0.contains { $0.opcode == 0x8 } }.last)
        #expect(refused.code == 3501)
        #expect(refused.reason == "bad request")

        let tooLong = try await open(makeNode(), maxMessageSize: 100)
        try await tooLong.writeInbound(ByteBuffer(bytes: [0x81, 0xFE, 0x10, 0x00, 1, 2, 3, 4]))
        let tooLarge = closeCode(try await written(tooLong) { $0.contains { $0.opcode == 0x8 } }.last)
        #expect(tooLarge.code == 3501)
        #expect(tooLarge.reason == "message too large")
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
        try await send(channel, "are you there", opcode: 0x9)
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
        try await channel.writeInbound(Self.clientFrame(code, opcode: 0x8))
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
