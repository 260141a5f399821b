import HummingbirdWebSocket
import NIOCore
import NIOWebSocket
import Synchronization

/// Where a client's messages go. `write` only queues (it never blocks); it answers false once the
/// client's queue limit is exceeded, and the caller disconnects the client as slow.
protocol Transport: AnyObject, Sendable {
    func write(_ message: String) -> Bool
    func close(_ disconnect: Disconnect)
}

/// The WebSocket adapter: queues messages per connection and flushes them on the channel's event
/// loop, joining whatever has queued up into newline-separated frames (one syscall for a burst).
final class WebSocketTransport: Transport {
    private struct State {
        var frames: [ByteBuffer] = []
        var queuedBytes = 0
        var flushScheduled = false
        var closed = false
        var closing: Task<Void, Never>?
    }

    /// Frames are kept below this size so clients with default frame limits can read them.
    static let frameSoftLimit = 65536

    private let channel: any Channel
    private let outbound: WebSocketOutboundWriter
    private let maxQueueSize: Int
    private let state = Mutex(State())
    /// The client this transport serves, told when the peer stops reading; cleared when the connection ends.
    private let client = Mutex<Client?>(nil)

    init(channel: any Channel, outbound: WebSocketOutboundWriter, maxQueueSize: Int) {
        self.channel = channel
        self.outbound = outbound
        self.maxQueueSize = maxQueueSize
    }

    func attach(_ client: Client) {
        self.client.withLock { $0 = client }
    }

    func detach() {
        client.withLock { $0 = nil }
    }

    func write(_ message: String) -> Bool {
        let size = message.utf8.count
        let (accepted, schedule) = state.withLock { state -> (Bool, Bool) in
            guard !state.closed else { return (true, false) }
            guard state.queuedBytes + size <= maxQueueSize else { return (false, false) }
            state.queuedBytes += size + 1
            if let last = state.frames.indices.last, state.frames[last].readableBytes + size < Self.frameSoftLimit {
                state.frames[last].writeInteger(UInt8(ascii: "\n"))
                state.frames[last].writeString(message)
            } else {
                var buffer = channel.allocator.buffer(capacity: max(size, 256))
                buffer.writeString(message)
                state.frames.append(buffer)
            }
            let schedule = !state.flushScheduled
            state.flushScheduled = true
            return (true, schedule)
        }
        if schedule {
            channel.eventLoop.execute { self.flush() }
        }
        return accepted
    }

    /// Runs on the event loop.
    private func flush() {
        let frames = state.withLock { state -> [ByteBuffer] in
            let frames = state.frames
            state.frames = []
            state.queuedBytes = 0
            state.flushScheduled = false
            return frames
        }
        guard !frames.isEmpty else { return }
        // Bytes still waiting in the channel above the high water mark: the peer does not read.
        guard channel.isWritable else {
            client.withLock { $0 }?.slow()
            return
        }
        for frame in frames {
            channel.write(WebSocketFrame(fin: true, opcode: .text, data: frame), promise: nil)
        }
        channel.flush()
    }

    func close(_ disconnect: Disconnect) {
        let alreadyClosed = state.withLock { state in
            defer { state.closed = true }
            if disconnect == .slow { state.frames = [] }
            return state.closed
        }
        guard !alreadyClosed else { return }
        let channel = self.channel
        let outbound = self.outbound
        channel.eventLoop.execute {
            self.flush()
            // A peer that does not answer the close frame is cut off.
            channel.eventLoop.scheduleTask(in: .seconds(5)) { channel.close(promise: nil) }
        }
        let closing = Task<Void, Never> {
            _ = try? await outbound.close(.init(codeNumber: disconnect.code), reason: disconnect.reason)
        }
        state.withLock { $0.closing = closing }
    }

    /// Waits until the close frame with our code is queued, so the WebSocket handler returning
    /// afterwards cannot close with a generic code first.
    func closed() async {
        await state.withLock { $0.closing }?.value
    }
}
