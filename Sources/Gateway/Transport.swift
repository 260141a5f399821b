import NIOCore
import NIOWebSocket
import Synchronization

/// Where a client's messages go. `write` only queues (it never blocks); it answers false once the
/// client's queue limit is exceeded, and the caller disconnects the client as slow.
protocol Transport: AnyObject, Sendable {
    func write(_ message: OutboundMessage) -> Bool
    func close(_ disconnect: Disconnect)
}

extension Transport {
    func write(_ message: String) -> Bool {
        write(OutboundMessage(message))
    }
}

/// One server → client message: its JSON text and, for a message many connections send (a
/// fanned-out publication), the whole WebSocket frame built once and shared by all of them.
struct OutboundMessage: Sendable {
    let payload: ByteBuffer
    let frame: ByteBuffer?

    init(_ text: String) {
        payload = ByteBuffer(string: text)
        frame = nil
    }

    init(shared text: String) {
        self.init(sharedPayload: ByteBuffer(string: text))
    }

    init(sharedPayload: ByteBuffer) {
        payload = sharedPayload
        frame = WebSocketFraming.frame(sharedPayload)
    }
}

/// Server frames (unmasked) written as bytes, so a shared frame goes out without per-connection work.
enum WebSocketFraming {
    /// Room for the longest header (opcode byte, length byte, 64-bit length).
    static let maxHeaderSize = 10

    static func headerSize(payloadLength: Int) -> Int {
        payloadLength < 126 ? 2 : payloadLength <= 0xFFFF ? 4 : 10
    }

    static func writeHeader(opcode: UInt8, payloadLength length: Int, to buffer: inout ByteBuffer, at index: Int) {
        buffer.setInteger(0x80 | opcode, at: index)
        if length < 126 {
            buffer.setInteger(UInt8(length), at: index + 1)
        } else if length <= 0xFFFF {
            buffer.setInteger(UInt8(126), at: index + 1)
            buffer.setInteger(UInt16(length), at: index + 2)
        } else {
            buffer.setInteger(UInt8(127), at: index + 1)
            buffer.setInteger(UInt64(length), at: index + 2)
        }
    }

    /// A new frame holding `payload`.
    static func frame(_ payload: ByteBuffer, opcode: UInt8 = 0x1) -> ByteBuffer {
        let header = headerSize(payloadLength: payload.readableBytes)
        var frame = ByteBufferAllocator().buffer(capacity: header + payload.readableBytes)
        frame.moveWriterIndex(forwardBy: header)
        writeHeader(opcode: opcode, payloadLength: payload.readableBytes, to: &frame, at: 0)
        frame.writeImmutableBuffer(payload)
        return frame
    }

    /// An empty buffer with room in front for the header, to append payloads to.
    static func payloadBuffer(capacity: Int) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: maxHeaderSize + capacity)
        buffer.moveWriterIndex(forwardBy: maxHeaderSize)
        buffer.moveReaderIndex(forwardBy: maxHeaderSize)
        return buffer
    }

    /// Turns a buffer from `payloadBuffer` into a frame in place.
    static func frame(inPlace buffer: inout ByteBuffer) {
        let length = buffer.readableBytes
        let start = buffer.readerIndex - headerSize(payloadLength: length)
        writeHeader(opcode: 0x1, payloadLength: length, to: &buffer, at: start)
        buffer.moveReaderIndex(to: start)
    }
}

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

    private let transport: WebSocketTransport
    private let client: Client
    private let inbox: Inbox
    private let maxMessageSize: Int
    private var fragments: ByteBuffer?
    private var readPending = false
    private var closeReceived = false

    init(node: Node, transport: WebSocketTransport, maxMessageSize: Int) {
        self.transport = transport
        self.client = node.makeClient(transport: transport)
        self.inbox = Inbox(client: client)
        self.maxMessageSize = maxMessageSize
        transport.attach(client)
        node.metrics.connectionsAccepted.add(1, ordering: .relaxed)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // The upgrader put the frame encoder nearest the socket; raw frames are written from its context.
        guard let encoder = try? context.pipeline.syncOperations.context(handlerType: WebSocketFrameEncoder.self) else {
            context.close(promise: nil)
            return
        }
        transport.setRawWriter(encoder)
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
