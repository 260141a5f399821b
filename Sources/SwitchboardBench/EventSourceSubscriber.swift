import NIOCore
import Synchronization

/// The load tool's Server-Sent Events subscriber (`switchboard-bench gateway … --transport sse`):
/// one `GET` with `Accept: text/event-stream`, as a browser's `EventSource` sends it, to the
/// gateway's `/connection/uni_sse?cf_connect=…` or to nchan's `/sub/{channel}`. The response body
/// is de-chunked when it is chunked and split into events at blank lines; each event with a
/// `data:` field and no `event:` name (a ping has one) is one delivery. A gateway stream is ready
/// at its first event, the connect push; an nchan stream at its `200`.
final class EventSourceSubscriber: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private struct State {
        var headRead = false
        var chunked = false
        /// Bytes not yet taken apart: the head, then the (chunked) body.
        var received: ByteBuffer?
        /// Left of the chunk being read (chunked bodies).
        var chunkLeft = 0
        /// The event stream's bytes not yet ending in a blank line.
        var events: [UInt8] = []
        var ready = false
    }

    private let path: String
    /// The gateway's stream starts with the connect push, which is not a delivery.
    private let connectPushFirst: Bool
    private let stats: GatewayBench.Stats
    private let state = Mutex(State())

    init(path: String, connectPushFirst: Bool, stats: GatewayBench.Stats) {
        self.path = path
        self.connectPushFirst = connectPushFirst
        self.stats = stats
    }

    func channelActive(context: ChannelHandlerContext) {
        let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: request)), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !state.withLock({ $0.ready }) { stats.failures.add(1, ordering: .relaxed) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        let now = GatewayBench.nowNanos()
        var failed = false
        var becameReady = false
        var messages: [[UInt8]] = []
        state.withLock { state in
            if state.received == nil { state.received = chunk } else { state.received!.writeBuffer(&chunk) }
            if !state.headRead {
                guard let view = state.received, let end = view.readableBytesView.firstRange(of: Array("\r\n\r\n".utf8)) else { return }
                let headLength = end.upperBound - view.readableBytesView.startIndex
                let head = (view.getString(at: view.readerIndex, length: headLength) ?? "").lowercased()
                guard head.hasPrefix("http/1.1 200") else {
                    failed = true
                    return
                }
                state.received!.moveReaderIndex(forwardBy: headLength)
                state.headRead = true
                state.chunked = head.contains("transfer-encoding: chunked")
                if !connectPushFirst {
                    state.ready = true
                    becameReady = true
                }
            }
            Self.takeBody(&state)
            messages = Self.takeEvents(&state.events)
            if connectPushFirst, !state.ready, let first = messages.first {
                messages.removeFirst()
                if first.starts(with: Array(#"{"connect""#.utf8)) {
                    state.ready = true
                    becameReady = true
                } else {
                    failed = true
                }
            }
        }
        if becameReady { stats.ready.add(1, ordering: .relaxed) }
        if failed {
            context.close(promise: nil)
            return
        }
        for message in messages {
            message.withUnsafeBytes { stats.record(delivery: $0, now: now) }
        }
    }

    /// Moves the body's bytes from `received` to `events`, without the chunked framing.
    private static func takeBody(_ state: inout State) {
        guard var received = state.received else { return }
        defer { state.received = received.readableBytes == 0 ? nil : received }
        guard state.chunked else {
            state.events += received.readBytes(length: received.readableBytes) ?? []
            return
        }
        while received.readableBytes > 0 {
            if state.chunkLeft > 0 {
                let take = min(state.chunkLeft, received.readableBytes)
                state.events += received.readBytes(length: take) ?? []
                state.chunkLeft -= take
                continue
            }
            // "\r\n" after a chunk's data, then "<hex size>\r\n".
            let view = received.readableBytesView
            guard let lineEnd = view.firstRange(of: Array("\r\n".utf8)) else { return }
            let line = view[view.startIndex..<lineEnd.lowerBound]
            received.moveReaderIndex(forwardBy: lineEnd.upperBound - view.startIndex)
            if line.isEmpty { continue }
            guard let size = Int(String(decoding: line, as: UTF8.self), radix: 16) else { return }
            state.chunkLeft = size
        }
    }

    /// The `data` of each whole event in `stream` that has no `event:` name, taken out of it.
    private static func takeEvents(_ stream: inout [UInt8]) -> [[UInt8]] {
        var messages: [[UInt8]] = []
        var start = 0
        var index = 0
        let newline = UInt8(ascii: "\n")
        while index + 1 < stream.count {
            guard stream[index] == newline, stream[index + 1] == newline else {
                index += 1
                continue
            }
            let event = stream[start..<index]
            var data: [UInt8]?
            var named = false
            for line in event.split(separator: newline, omittingEmptySubsequences: true) {
                if line.starts(with: Array("data:".utf8)) {
                    var value = line.dropFirst(5)
                    if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
                    data = (data.map { $0 + [newline] } ?? []) + value
                } else if line.starts(with: Array("event:".utf8)) {
                    named = true
                }
            }
            if let data, !named { messages.append(data) }
            index += 2
            start = index
        }
        stream.removeFirst(start)
        return messages
    }
}
