import NIOCore
import NIOWebSocket
import Synchronization

/// Where a client's messages go. `write` only queues (it never blocks); it answers false once the
/// client's queue limit is exceeded, and the caller disconnects the client as slow.
protocol Transport: AnyObject, Sendable {
    func write(_ message: ByteBuffer) -> Bool
    func close(_ disconnect: Disconnect)
}

extension Transport {
    func write(_ message: String) -> Bool {
        write(ByteBuffer(string: message))
    }
}

/// The outbound side of one WebSocket connection. Messages queue under a lock from any thread
/// (fan-out runs wherever the broker delivers); the connection's event loop writes them once per
/// tick, joining what queued up into newline-separated frames, and flushes once. A fanned-out
/// publication's bytes are shared by every connection that has nothing else queued (no copy).
final class WebSocketTransport: Transport {
    private struct State {
        var pending: ByteBuffer?
        /// Frames that reached the soft size limit, oldest first.
        var full: [ByteBuffer] = []
        var queuedBytes = 0
        var flushScheduled = false
        var closed = false
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

    func write(_ message: ByteBuffer) -> Bool {
        let size = message.readableBytes
        let (accepted, schedule) = state.withLock { state -> (Bool, Bool) in
            guard !state.closed else { return (true, false) }
            guard state.queuedBytes + size <= maxQueueSize else { return (false, false) }
            state.queuedBytes += size + 1
            if state.pending == nil {
                state.pending = message
            } else if state.pending!.readableBytes + size < Self.frameSoftLimit {
                state.pending!.writeInteger(UInt8(ascii: "\n"))
                state.pending!.writeImmutableBuffer(message)
            } else {
                state.full.append(state.pending!)
                state.pending = message
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
        let (full, pending) = state.withLock { state -> ([ByteBuffer], ByteBuffer?) in
            defer {
                state.full = []
                state.pending = nil
                state.queuedBytes = 0
                state.flushScheduled = false
            }
            return (state.full, state.pending)
        }
        guard let pending else { return }
        // Bytes still waiting in the channel above the high water mark: the peer does not read.
        guard channel.isWritable else {
            client.withLock { $0 }?.slow()
            return
        }
        for frame in full {
            channel.write(WebSocketFrame(fin: true, opcode: .text, data: frame), promise: nil)
        }
        channel.write(WebSocketFrame(fin: true, opcode: .text, data: pending), promise: nil)
        channel.flush()
    }

    func close(_ disconnect: Disconnect) {
        let alreadyClosed = state.withLock { state in
            defer { state.closed = true }
            if disconnect == .slow {
                state.pending = nil
                state.full = []
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

/// Flushes, once per event-loop tick, every connection of one event loop that queued messages, so
/// a publication fanned out to thousands of connections costs one task on each loop, not one per
/// connection.
final class FlushBatcher: Sendable {
    let eventLoop: any EventLoop
    private let pending = Mutex<[WebSocketTransport]>([])

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func schedule(_ transport: WebSocketTransport) {
        let first = pending.withLock { pending in
            pending.append(transport)
            return pending.count == 1
        }
        if first { eventLoop.execute { self.run() } }
    }

    private func run() {
        let transports = pending.withLock { pending in
            let transports = pending
            pending.removeAll(keepingCapacity: true)
            return transports
        }
        for transport in transports { transport.flush() }
    }
}

/// The inbound side of one WebSocket connection, driven by NIO callbacks: joins fragments, answers
/// WebSocket pings and the closing handshake, enforces the message size limit, and hands complete
/// messages to the client through an `Inbox` (commands of one connection run in order). Reads stop
/// while the inbox is full, so a client that floods commands is slowed down to the server's pace.
final class WebSocketHandler: ChannelDuplexHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let node: Node
    private let transport: WebSocketTransport
    private let client: Client
    private let inbox: Inbox
    private let maxMessageSize: Int
    private var fragments: ByteBuffer?
    private var readPending = false
    private var closeReceived = false

    init(node: Node, transport: WebSocketTransport, maxMessageSize: Int) {
        self.node = node
        self.transport = transport
        self.client = node.makeClient(transport: transport)
        self.inbox = Inbox(client: client)
        self.maxMessageSize = maxMessageSize
        transport.attach(client)
        node.metrics.connectionsAccepted.add(1, ordering: .relaxed)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let eventLoop = context.eventLoop
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: eventLoop)
        inbox.onDrained { eventLoop.execute { bound.value.handler.resumeReading(bound.value.context) } }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary:
            if frame.fin, fragments == nil {
                receive(frame.unmaskedData)
            } else {
                fragments = frame.unmaskedData
                checkSize()
            }
        case .continuation:
            guard var buffer = fragments else { return }
            var data = frame.unmaskedData
            buffer.writeBuffer(&data)
            fragments = buffer
            if checkSize(), frame.fin {
                fragments = nil
                receive(buffer)
            }
        case .ping:
            var pong = frame.unmaskedData
            if pong.readableBytes > 125 { pong = pong.getSlice(at: pong.readerIndex, length: 125)! }
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: pong)), promise: nil)
        case .connectionClose:
            guard !closeReceived else { return }
            closeReceived = true
            // The answer to our own close frame: the handshake is complete.
            guard transport.peerClosed() else {
                context.close(promise: nil)
                return
            }
            // The peer's close: echo its code, then close.
            var data = frame.unmaskedData
            let code = data.readWebSocketErrorCode() ?? .normalClosure
            var reply = context.channel.allocator.buffer(capacity: 2)
            reply.write(webSocketErrorCode: code)
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: reply)))
                .whenComplete { [channel = context.channel] _ in channel.close(promise: nil) }
        default:
            break
        }
    }

    /// False (and the client disconnected) when the message being assembled is too large.
    @discardableResult
    private func checkSize() -> Bool {
        guard let fragments, fragments.readableBytes > maxMessageSize else { return true }
        self.fragments = nil
        client.disconnect(.messageTooLarge)
        return false
    }

    private func receive(_ message: ByteBuffer) {
        guard message.readableBytes <= maxMessageSize else {
            client.disconnect(.messageTooLarge)
            return
        }
        if client.handlePong(message) { return }
        inbox.push(message)
    }

    func read(context: ChannelHandlerContext) {
        if inbox.isFull {
            readPending = true
        } else {
            context.read()
        }
    }

    private func resumeReading(_ context: ChannelHandlerContext) {
        guard readPending else { return }
        readPending = false
        context.read()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is NIOWebSocketError {
            client.disconnect(.messageTooLarge)
        } else {
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbox.onDrained(nil)
        let client = self.client
        let transport = self.transport
        Task {
            await client.transportClosed()
            transport.detach()
        }
        context.fireChannelInactive()
    }
}

/// Commands waiting for one client, run in arrival order by a task that exists only while there
/// is work (an idle connection has no task).
final class Inbox: Sendable {
    private struct State {
        var messages: [ByteBuffer] = []
        var head = 0
        var running = false
        var paused = false
        /// Resumes reading once a backlog that paused the connection is worked off.
        var onDrained: (@Sendable () -> Void)?
    }

    /// Messages queued before the connection stops reading.
    static let limit = 64

    private let client: Client
    private let state = Mutex(State())

    init(client: Client) {
        self.client = client
    }

    func onDrained(_ action: (@Sendable () -> Void)?) {
        state.withLock { $0.onDrained = action }
    }

    /// True when reading should stop (the backlog is at its limit); marks the inbox paused.
    var isFull: Bool {
        state.withLock { state in
            let full = state.messages.count - state.head >= Self.limit
            if full { state.paused = true }
            return full
        }
    }

    func push(_ message: ByteBuffer) {
        let start = state.withLock { state -> Bool in
            state.messages.append(message)
            guard !state.running else { return false }
            state.running = true
            return true
        }
        if start {
            Task { await self.drain() }
        }
    }

    private func next() -> (ByteBuffer?, resume: (@Sendable () -> Void)?) {
        state.withLock { state in
            if state.head < state.messages.count {
                let message = state.messages[state.head]
                state.head += 1
                return (message, nil)
            }
            state.messages.removeAll(keepingCapacity: false)
            state.head = 0
            state.running = false
            let resume = state.paused ? state.onDrained : nil
            state.paused = false
            return (nil, resume)
        }
    }

    private func drain() async {
        while true {
            let (message, resume) = next()
            guard let message else {
                resume?()
                return
            }
            if client.isClosed { continue }
            await client.handle(message)
        }
    }
}
