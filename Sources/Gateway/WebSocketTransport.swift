/// The outbound side of one WebSocket connection (the `Transport` the listener gives each client),
/// after centrifuge's transport_websocket.go.
import NIOCore
import NIOWebSocket
import Synchronization

/// The outbound side of one WebSocket connection. Messages queue under a lock from any thread
/// (fan-out runs wherever the broker delivers); the connection's event loop writes them once per
/// tick, joining what queued up into newline-separated frames, and flushes once. A message alone in
/// its tick goes out as its shared pre-built frame when it has one (no copy, no encoding).
final class WebSocketTransport: Transport {
    private struct State {
        /// The only message queued so far.
        var single: OutboundMessage?
        /// Payloads joined by newlines (with header room in front), once more than one queued.
        var joined: ByteBuffer?
        /// Complete frames that reached the soft size limit, oldest first.
        var ready: [ByteBuffer] = []
        var queuedBytes = 0
        var flushScheduled = false
        var closed = false
        /// Writes raw frame bytes below the frame encoder; set once the handler is in the pipeline.
        var rawWriter: NIOLoopBound<ChannelHandlerContext>?

        mutating func join(_ payload: ByteBuffer) {
            if joined == nil {
                joined = WebSocketFraming.payloadBuffer(capacity: max(256, payload.readableBytes * 2))
            } else {
                joined!.writeInteger(UInt8(ascii: "\n"))
            }
            joined!.writeImmutableBuffer(payload)
        }
    }

    /// Frames are kept below this size so clients with default frame limits can read them.
    static let frameSoftLimit = 65536
    /// How long a peer has to answer our close frame before the connection is cut.
    static let closeTimeout = TimeAmount.seconds(2)

    let channel: any Channel
    private let batcher: FlushBatcher
    private let maxQueueSize: Int
    private let state = Mutex(State())
    /// Told when the peer stops reading; cleared when the connection ends.
    private let client = Mutex<Client?>(nil)

    init(channel: any Channel, batcher: FlushBatcher, maxQueueSize: Int) {
        self.channel = channel
        self.batcher = batcher
        self.maxQueueSize = maxQueueSize
    }

    func attach(_ client: Client) {
        self.client.withLock { $0 = client }
    }

    func detach() {
        client.withLock { $0 = nil }
    }

    /// Called on the event loop with the context of the handler nearest the socket that still
    /// takes bytes (the frame encoder's): frames written there bypass encoding.
    func setRawWriter(_ context: ChannelHandlerContext) {
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        state.withLock { $0.rawWriter = bound }
    }

    func write(_ message: OutboundMessage) -> Bool {
        let size = message.payload.readableBytes
        let (accepted, schedule) = state.withLock { state -> (Bool, Bool) in
            guard !state.closed else { return (true, false) }
            guard state.queuedBytes + size <= maxQueueSize else { return (false, false) }
            state.queuedBytes += size + 1
            if state.single == nil, state.joined == nil {
                state.single = message
            } else {
                if let single = state.single {
                    state.single = nil
                    state.join(single.payload)
                }
                if state.joined!.readableBytes + size >= Self.frameSoftLimit {
                    WebSocketFraming.frame(inPlace: &state.joined!)
                    state.ready.append(state.joined!)
                    state.joined = nil
                }
                state.join(message.payload)
            }
            let schedule = !state.flushScheduled
            state.flushScheduled = true
            return (true, schedule)
        }
        if schedule { batcher.schedule(self) }
        return accepted
    }

    /// Writes what queued and flushes; runs on the channel's event loop.
    func flush() {
        let (ready, joined, single, rawWriter) = state.withLock { state in
            defer {
                state.ready = []
                state.joined = nil
                state.single = nil
                state.queuedBytes = 0
                state.flushScheduled = false
            }
            return (state.ready, state.joined, state.single, state.rawWriter)
        }
        guard joined != nil || single != nil, let rawWriter else { return }
        // Bytes still waiting in the channel above the high water mark: the peer does not read.
        guard channel.isWritable else {
            client.withLock { $0 }?.slow()
            return
        }
        let context = rawWriter.value
        for frame in ready {
            context.write(NIOAny(frame), promise: nil)
        }
        if var joined {
            WebSocketFraming.frame(inPlace: &joined)
            context.write(NIOAny(joined), promise: nil)
        } else if let single {
            context.write(NIOAny(single.frame ?? WebSocketFraming.frame(single.payload)), promise: nil)
        }
        context.flush()
    }

    func close(_ disconnect: Disconnect) {
        let alreadyClosed = state.withLock { state in
            defer { state.closed = true }
            if disconnect == .slow {
                state.single = nil
                state.joined = nil
                state.ready = []
            }
            return state.closed
        }
        guard !alreadyClosed else { return }
        let channel = self.channel
        channel.eventLoop.execute {
            self.flush()
            var data = channel.allocator.buffer(capacity: 2 + disconnect.reason.utf8.count)
            data.write(webSocketErrorCode: WebSocketErrorCode(codeNumber: disconnect.code))
            data.writeString(disconnect.reason)
            channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, data: data), promise: nil)
            // A peer that does not answer the close frame is cut off.
            channel.eventLoop.scheduleTask(in: Self.closeTimeout) { channel.close(promise: nil) }
        }
    }

    /// The peer sent a close frame; true when it started the handshake (we have not sent ours),
    /// so it gets an echo. Nothing else is sent afterwards.
    func peerClosed() -> Bool {
        state.withLock { state in
            defer { state.closed = true }
            return !state.closed
        }
    }
}
