/// A WebSocket client for tests, on a real socket: the upgrade request, masked text frames as a
/// browser sends them (or any raw frame), and what the server sends back as text messages and
/// the close code. Each newline-separated JSON message of a frame is one `Event.text`.
import Foundation
import NIOCore
import NIOPosix
import Synchronization

final class WebSocketTestClient: Sendable {
    enum Event: Sendable, Equatable {
        case text(String)
        /// A close frame and its status code (nil when the frame carried none).
        case close(UInt16?)
        /// A ping frame (answered only by `pong()`).
        case ping
        /// The connection ended.
        case end
    }

    let channel: any Channel
    let events: AsyncStream<Event>

    private init(channel: any Channel, events: AsyncStream<Event>) {
        self.channel = channel
        self.events = events
    }

    /// `receiveBuffer`: the socket's receive buffer in bytes (`SO_RCVBUF`, set before connecting,
    /// which also stops the kernel from growing it), for a client whose socket fills quickly.
    /// `target`: the request target (the unidirectional endpoint, a query).
    static func connect(port: Int, target: String = "/connection/websocket", receiveBuffer: Int? = nil) async throws -> WebSocketTestClient {
        let (events, continuation) = AsyncStream<Event>.makeStream()
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        if let receiveBuffer {
            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer))
        }
        let channel = try await bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Reader(continuation)) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        let request =
            "GET \(target) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        try await channel.writeAndFlush(ByteBuffer(string: request)).get()
        return WebSocketTestClient(channel: channel, events: events)
    }

    /// One masked text frame.
    func send(_ text: String) async throws {
        var buffer = channel.allocator.buffer(capacity: text.utf8.count + 14)
        Self.writeFrame(Array(text.utf8), to: &buffer)
        try await channel.writeAndFlush(buffer).get()
    }

    /// Many masked text frames in one write.
    func send(_ texts: [String]) async throws {
        var buffer = channel.allocator.buffer(capacity: texts.reduce(0) { $0 + $1.utf8.count + 14 })
        for text in texts { Self.writeFrame(Array(text.utf8), to: &buffer) }
        try await channel.writeAndFlush(buffer).get()
    }

    /// A masked pong frame.
    func pong() async throws {
        var buffer = channel.allocator.buffer(capacity: 6)
        Self.writeFrame([], opcode: 0xA, to: &buffer)
        try await channel.writeAndFlush(buffer).get()
    }

    func close() async {
        try? await channel.close().get()
    }

    static func writeFrame(_ payload: [UInt8], opcode: UInt8 = 0x1, to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(0x80 | opcode))
        if payload.count < 126 {
            buffer.writeInteger(UInt8(0x80 | payload.count))
        } else if payload.count <= 0xFFFF {
            buffer.writeInteger(UInt8(0x80 | 126))
            buffer.writeInteger(UInt16(payload.count))
        } else {
            buffer.writeInteger(UInt8(0x80 | 127))
            buffer.writeInteger(UInt64(payload.count))
        }
        let mask: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        buffer.writeBytes(mask)
        buffer.writeBytes(payload.enumerated().map { $0.element ^ mask[$0.offset & 3] })
    }

    /// Parses the 101 answer, then unmasked server frames.
    final class Reader: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer

        private let continuation: AsyncStream<Event>.Continuation
        private let state = Mutex<(upgraded: Bool, pending: [UInt8])>((false, []))

        init(_ continuation: AsyncStream<Event>.Continuation) { self.continuation = continuation }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let chunk = unwrapInboundIn(data)
            let events = state.withLock { state -> [Event] in
                state.pending += Array(chunk.readableBytesView)
                var events: [Event] = []
                if !state.upgraded {
                    guard let end = state.pending.firstRange(of: Array("\r\n\r\n".utf8)) else { return [] }
                    let head = String(decoding: state.pending[..<end.lowerBound], as: UTF8.self)
                    guard head.hasPrefix("HTTP/1.1 101") else { return [.end] }
                    state.pending.removeSubrange(..<end.upperBound)
                    state.upgraded = true
                }
                // Frames are taken from `start` on and the consumed bytes dropped once at the end
                // (dropping each frame's bytes as it goes is quadratic in what is buffered).
                var start = 0
                while state.pending.count - start >= 2 {
                    let opcode = state.pending[start] & 0x0F
                    var length = Int(state.pending[start + 1] & 0x7F)
                    var offset = 2
                    if length == 126 {
                        guard state.pending.count - start >= 4 else { break }
                        length = Int(state.pending[start + 2]) << 8 | Int(state.pending[start + 3])
                        offset = 4
                    } else if length == 127 {
                        guard state.pending.count - start >= 10 else { break }
                        length = state.pending[(start + 2)..<(start + 10)].reduce(0) { $0 << 8 | Int($1) }
                        offset = 10
                    }
                    guard state.pending.count - start >= offset + length else { break }
                    let payload = state.pending[(start + offset)..<(start + offset + length)]
                    start += offset + length
                    switch opcode {
                    case 0x1, 0x0:
                        for line in payload.split(separator: UInt8(ascii: "\n")) { events.append(.text(String(decoding: line, as: UTF8.self))) }
                    case 0x9:
                        events.append(.ping)
                    case 0x8:
                        events.append(.close(payload.count >= 2 ? UInt16(payload[payload.startIndex]) << 8 | UInt16(payload[payload.startIndex + 1]) : nil))
                    default:
                        break
                    }
                }
                state.pending.removeSubrange(..<start)
                return events
            }
            for event in events { continuation.yield(event) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            continuation.yield(.end)
            continuation.finish()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}
