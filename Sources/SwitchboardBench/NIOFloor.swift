/// `switchboard-bench gateway nio-floor`: what a new connection costs a SwiftNIO server that does
/// nothing but answer it, the floor under the gateway's CPU per new connection.
import Foundation
import Gateway
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixSignals

/// A server with no protocol: each connection's first request head is answered with a canned
/// response (a WebSocket `101` with its `Sec-WebSocket-Accept` for an upgrade, else the head of an
/// endless chunked `text/event-stream`), and the connection is then held, its input dropped. The
/// load tool's nchan subscribers (`idle --target nchan [--transport sse]`) count it ready on that
/// answer, as they do nchan's. What it measures is what the gateway's connection path costs
/// before any of its own work: the accept, NIO's channel for the socket, one read, one write.
///
/// `--accept acceptor` accepts as the gateway does (its `Acceptor` thread, each socket handed to
/// an event loop with `ClientBootstrap.withConnectedSocket`); `--accept nio` (the default) with
/// NIO's `ServerBootstrap`, which accepts on an event loop.
enum NIOFloor {
    static func serve(_ options: Options) async throws {
        let port = options.int("port", 18720)
        let group = MultiThreadedEventLoopGroup.singleton
        let logger = Logger(label: "nio-floor")
        switch options["accept"] ?? "nio" {
        case "nio":
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 4096)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Answer()) }
                }
                .bind(host: "127.0.0.1", port: port)
                .get()
            print("nio-floor (NIO's accept) on port \(port)")
            await waitForSignal()
            try await channel.close()
        case "acceptor":
            let acceptor = try Acceptor(host: "127.0.0.1", port: port, backlog: 4096, eventLoop: group.next())
            acceptor.start(logger: logger) { socket in
                _ = ClientBootstrap(group: group)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Answer()) }
                    }
                    .withConnectedSocket(socket)
            }
            print("nio-floor (the gateway's accept thread) on port \(port)")
            await waitForSignal()
            acceptor.close()
        default:
            throw GatewayLoadError.failed("--accept is nio or acceptor")
        }
    }

    static func waitForSignal() async {
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        for await _ in signals { return }
    }

    /// Answers the first request head and drops everything after it.
    final class Answer: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        private static let eventStreamHead = ByteBuffer(bytes: NIOFloor.eventStreamHead)
        private var answered = false

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !answered else { return }
            let bytes = unwrapInboundIn(data)
            // A head in one read, as the load tool's requests arrive.
            guard bytes.readableBytesView.firstRange(of: Array("\r\n\r\n".utf8)) != nil else { return }
            answered = true
            let key = bytes.withUnsafeReadableBytes { NIOFloor.webSocketKey(in: $0) }
            let answer = key.map { ByteBuffer(bytes: WebSocketHandshake.response(key: $0)) } ?? Self.eventStreamHead
            context.writeAndFlush(wrapOutboundOut(answer), promise: nil)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }

    /// The answer to a request head that is not a WebSocket upgrade: an endless event stream's head.
    static let eventStreamHead = Array(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)

    /// The `Sec-WebSocket-Key` header's value, found in the bytes (no parse of the rest).
    static func webSocketKey(in raw: UnsafeRawBufferPointer) -> String? {
        let name = Array("\r\nsec-websocket-key:".utf8)
        guard raw.count > name.count else { return nil }
        search: for start in 0...(raw.count - name.count) {
            for offset in 0..<name.count where raw[start + offset] | (name[offset] >= 0x61 ? 0x20 : 0) != name[offset] {
                continue search
            }
            var from = start + name.count
            while from < raw.count, raw[from] == UInt8(ascii: " ") { from += 1 }
            var to = from
            while to < raw.count, raw[to] != UInt8(ascii: "\r") { to += 1 }
            return String(decoding: UnsafeRawBufferPointer(rebasing: raw[from..<to]), as: UTF8.self)
        }
        return nil
    }
}
