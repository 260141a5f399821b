import Foundation
import NIOCore
import Synchronization

/// The load tool's publisher for nchan (`switchboard-bench gateway … --target nchan`): HTTP/1.1
/// POSTs to nchan's publisher location `/pub/{channel}` on one keep-alive connection, pipelined;
/// the request body is the message. Each response is read (status line, headers, a
/// `Content-Length` body) and counted: 2xx in `acknowledged`, anything else in `failures`.
final class NchanPublisher: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    private let stats: GatewayBench.Stats
    private let received = Mutex<ByteBuffer?>(nil)

    init(stats: GatewayBench.Stats) {
        self.stats = stats
    }

    /// Appends one POST of `body` to `channel`'s publisher location.
    static func writeRequest(channel: String, body: String, to buffer: inout ByteBuffer) {
        let length = body.utf8.count
        buffer.writeString(
            "POST /pub/\(channel) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(length)\r\n\r\n")
        buffer.writeString(body)
    }

    func channelActive(context: ChannelHandlerContext) {
        stats.ready.add(1, ordering: .relaxed)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        stats.failures.add(1, ordering: .relaxed)
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        var answered = 0
        var failed = 0
        var malformed = false
        received.withLock { received in
            if received == nil { received = chunk } else { received!.writeBuffer(&chunk) }
            while var buffer = received {
                let view = buffer.readableBytesView
                guard let end = view.firstRange(of: Self.headEnd) else { break }
                let headLength = end.upperBound - view.startIndex
                let head = buffer.getString(at: buffer.readerIndex, length: headLength) ?? ""
                let lines = head.split(separator: "\r\n")
                guard let statusLine = lines.first, statusLine.hasPrefix("HTTP/1.1 "),
                    let status = Int(statusLine.dropFirst(9).prefix(3))
                else {
                    malformed = true
                    break
                }
                var bodyLength = 0
                for line in lines.dropFirst() where line.lowercased().hasPrefix("content-length:") {
                    bodyLength = Int(line.dropFirst(15).trimmingCharacters(in: .whitespaces)) ?? 0
                }
                guard buffer.readableBytes >= headLength + bodyLength else { break }
                buffer.moveReaderIndex(forwardBy: headLength + bodyLength)
                received = buffer.readableBytes == 0 ? nil : buffer
                if (200..<300).contains(status) { answered += 1 } else { failed += 1 }
            }
        }
        if answered > 0 { stats.acknowledged.add(answered, ordering: .relaxed) }
        if failed > 0 || malformed { stats.failures.add(max(failed, 1), ordering: .relaxed) }
        if malformed { context.close(promise: nil) }
    }

    private static let headEnd = Array("\r\n\r\n".utf8)
}
