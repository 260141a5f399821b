/// The outbound side of one WebSocket connection (the `Transport` the listener gives each client),
/// after centrifuge's transport_websocket.go.
import NIOCore
import NIOWebSocket
import Synchronization

/// The outbound side of one WebSocket connection. Messages queue under a lock from any thread
/// (replies, join/leave pushes); the connection's event loop writes them once per
/// tick, joining what queued up into newline-separated frames, and flushes once. A message alone in
/// its tick goes out as its shared pre-built frame when it has one (no copy, no encoding).
///
/// Every byte this connection sends after the upgrade goes through here, control frames included
/// (and a unidirectional connection's `101`, sent with its first frame), so the transport knows
/// whether the socket's owner (`SocketOwner`: a NIO channel, or a connection of the gateway's own
/// loop) holds any of them. While it holds none, frames are written to the socket with `send`
/// directly (`DirectSocketWriter`): a fan-out then costs one system call per subscriber and none
/// of the owner's per-write work; what the socket does not take goes to the owner's queue, and
/// later frames follow it there. Between the owner closing the descriptor and the handler hearing
/// of it, nothing of ours writes (NIO runs only write-promise callbacks; the own loop tells the
/// handler in the same call).
final class WebSocketTransport: Transport, BatchFlushed, BatchSender, DirectSocketWriter {
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
        /// Takes what the socket does not (below NIO's frame encoder, or the socket connection's
        /// queue); set once the connection's handler is in place.
        var rawWriter: QueuedWriter?
        /// Set open with the raw writer, closed by the handler's `channelInactive`.
        var writes = DirectWriteState()
        /// The handshake's `101`, not sent yet: it goes out in front of the first frame.
        var unsentResponse: ByteBuffer?

        /// The `101` to send now, with what is about to be written (once the raw writer is set).
        mutating func takeUnsentResponse() -> ByteBuffer? {
            rawWriter == nil ? nil : unsentResponse.take()
        }

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

    let owner: SocketOwner
    let unidirectional: Bool
    let socket: CInt?
    let metrics: Metrics?
    private let batcher: FlushBatcher
    private let maxQueueSize: Int
    private let state = Mutex(State())
    /// Told when the peer stops reading; cleared when the connection ends.
    private let client = Mutex<Client?>(nil)

    init(
        owner: SocketOwner, socket: CInt? = nil, metrics: Metrics? = nil, batcher: FlushBatcher, maxQueueSize: Int,
        unidirectional: Bool = false, unsentResponse: [UInt8]? = nil
    ) {
        if let unsentResponse { state.withLock { $0.unsentResponse = ByteBuffer(bytes: unsentResponse) } }
        self.owner = owner
        self.unidirectional = unidirectional
        self.socket = socket
        self.metrics = metrics
        self.batcher = batcher
        self.maxQueueSize = maxQueueSize
    }

    func attach(_ client: Client) {
        self.client.withLock { $0 = client }
    }

    convenience init(
        channel: any Channel, socket: CInt? = nil, metrics: Metrics? = nil, batcher: FlushBatcher, maxQueueSize: Int,
        unidirectional: Bool = false, unsentResponse: [UInt8]? = nil
    ) {
        self.init(
            owner: .channel(channel), socket: socket, metrics: metrics, batcher: batcher, maxQueueSize: maxQueueSize,
            unidirectional: unidirectional, unsentResponse: unsentResponse)
    }

    func detach() {
        client.withLock { $0 = nil }
    }

    /// Called on the event loop with the context of the handler nearest the socket that still
    /// takes bytes (the frame encoder's): frames written there bypass encoding.
    func setRawWriter(_ context: ChannelHandlerContext) {
        setRawWriter(.context(NIOLoopBound(context, eventLoop: context.eventLoop)), open: context.channel.isActive)
    }

    /// Called on the loop by the handler of a connection of the gateway's own event loop.
    func setRawWriter(_ connection: SocketConnection) {
        setRawWriter(.connection(connection), open: connection.isOpen)
    }

    private func setRawWriter(_ writer: QueuedWriter, open: Bool) {
        state.withLock { state in
            state.rawWriter = writer
            state.writes.open = open
        }
    }

    func withDirectWriteState<Result>(_ body: (inout DirectWriteState) -> Result) -> Result {
        state.withLock { body(&$0.writes) }
    }

    func write(_ message: OutboundMessage) -> Bool {
        // A unidirectional client gets pushes without their wrapper: one frame of its own per
        // message (the shared frame holds the wrapper), its payload a view of the shared bytes.
        let message = unidirectional ? UniWebSocket.unwrap(message) : message
        let size = message.payloadSize
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

    var fanOutBatcher: FlushBatcher? { batcher }

    /// During a fan-out on this connection's loop: a message with nothing queued before it, for a
    /// socket its owner holds nothing for, joins `batch` (its shared frame, or a header in front of a
    /// unidirectional push's payload) without being queued or flushed. Anything else is queued.
    /// Added under the lock, so a message queued from another thread meanwhile is flushed by a
    /// later task of the loop, after the fan-out has sent the batch.
    func write(_ original: OutboundMessage, into batch: SendBatch) -> Bool {
        guard let socket else { return write(original) }
        let message = unidirectional ? UniWebSocket.unwrap(original) : original
        let added = state.withLock { state -> Bool in
            guard !state.closed, !state.flushScheduled, state.single == nil, state.joined == nil, state.ready.isEmpty,
                state.unsentResponse == nil, state.rawWriter != nil, state.writes.direct, state.writes.writable
            else { return false }
            add(message, to: batch, socket: socket)
            return true
        }
        return added || write(original)
    }

    /// Writes what queued and flushes; runs on the channel's event loop.
    ///
    /// What queued is moved out of the state, not copied: a fanned-out publication's buffers are
    /// shared by every subscriber, on both event loops, and each copy and release of them is an
    /// atomic on a cache line the other loop is also writing.
    func flush() {
        flush(batch: nil)
    }

    func flush(into batch: SendBatch) {
        flush(batch: batch)
    }

    private func flush(batch: SendBatch?) {
        let (ready, joined, single, hasWriter, writable, direct, response) = state.withLock { state in
            state.queuedBytes = 0
            state.flushScheduled = false
            var ready: [ByteBuffer] = []
            swap(&ready, &state.ready)
            let (joined, single) = (state.joined.take(), state.single.take())
            let response = joined != nil || single != nil ? state.takeUnsentResponse() : nil
            return (ready, joined, single, state.rawWriter != nil, state.writes.writable, state.writes.direct, response)
        }
        guard joined != nil || single != nil, hasWriter else { return }
        // Bytes still waiting in the channel above the high water mark: the peer does not read.
        guard writable else {
            client.withLock { $0 }?.slow()
            return
        }
        if response == nil, ready.isEmpty, joined == nil, let single {
            // The common case (one publication since the last tick): no array of frames, and
            // for a message without a shared frame none built either while the socket takes it.
            if direct, let socket, let batch {
                add(single, to: batch, socket: socket)
            } else if let frame = single.frame {
                send(frame, direct: direct)
            } else if let rest = unsent(payload: single.payload, direct: direct) {
                _ = handOn([rest][...], to: rawWriter())
            }
            return
        }
        var frames = ready
        if var joined {
            WebSocketFraming.frame(inPlace: &joined)
            frames.append(joined)
        } else if let single {
            single.withFrame { frames.append($0) }
        }
        if let response { frames = [Self.joining(response, frames)] }
        send(frames, to: rawWriter(), direct: direct)
    }

    /// Leaves `message` to `batch`: its shared frame as it is, else a text-frame header in front
    /// of its payload where it is.
    private func add(_ message: OutboundMessage, to batch: SendBatch, socket: CInt) {
        if let frame = message.frame {
            batch.add(frame, socket: socket, sender: self)
        } else {
            WebSocketFraming.withTextHeader(payloadLength: message.payloadSize) { head in
                batch.add(head: head, body: message.payload, socket: socket, sender: self)
            }
        }
    }

    /// `head` and `frames` in one buffer, for one `send` (a `101` and the first frames: a few
    /// hundred bytes).
    private static func joining(_ head: ByteBuffer, _ frames: [ByteBuffer]) -> ByteBuffer {
        var joined = head
        joined.reserveCapacity(minimumWritableBytes: frames.reduce(0) { $0 + $1.readableBytes })
        for frame in frames { joined.writeImmutableBuffer(frame) }
        return joined
    }

    /// Where frames the socket did not take go; only once the raw writer is set, on the event loop.
    private func rawWriter() -> QueuedWriter {
        state.withLock { $0.rawWriter! }
    }

    /// Sends a control frame (pong, close) after whatever is queued; runs on the event loop.
    /// `thenClose`: the channel is closed once the frame is written.
    func sendControlFrame(opcode: UInt8, payload: ByteBuffer, thenClose: Bool = false) {
        flush()
        let (rawWriter, direct, response) = state.withLock { ($0.rawWriter, $0.writes.direct, $0.takeUnsentResponse()) }
        guard let rawWriter else {
            if thenClose { owner.close() }
            return
        }
        var frame = WebSocketFraming.frame(payload, opcode: opcode)
        if let response { frame = Self.joining(response, [frame]) }
        let written = send([frame], to: rawWriter, direct: direct)
        guard thenClose else { return }
        if let written {
            written.whenComplete { [owner] _ in owner.close() }
        } else {
            owner.close()
        }
    }

    /// `send(frames, …)` for one frame, without an array unless the socket's owner has to take
    /// some of it, and without a copy of the frame when the socket takes it all.
    @discardableResult
    private func send(_ frame: ByteBuffer, direct: Bool) -> EventLoopFuture<Void>? {
        guard let rest = unsent(frame, direct: direct) else { return nil }
        return handOn([rest][...], to: rawWriter())
    }

    /// A frame left to the tick's `SendBatch`: what the socket did not take goes to the owner.
    func sent(_ outcome: SendOutcome) {
        switch outcome {
        case .all: break
        case .part(let whole, let written): _ = handOn([rest(of: whole, written: written)][...], to: rawWriter())
        case .unknown: owner.close()
        }
    }

    /// Writes whole frames in order, directly when `direct` (the socket is open and its owner holds
    /// nothing for it); runs on the event loop. Returns nil when the socket took everything at
    /// once, else a future that succeeds when the owner has written what it was handed.
    @discardableResult
    private func send(_ frames: [ByteBuffer], to writer: QueuedWriter, direct: Bool) -> EventLoopFuture<Void>? {
        var frames = frames[...]
        while direct, let frame = frames.first {
            guard let rest = unsent(frame, direct: true) else {
                frames = frames.dropFirst()
                continue
            }
            frames[frames.startIndex] = rest
            break
        }
        return handOn(frames, to: writer)
    }

    /// What of the text frame of `payload` is left for the owner, as `unsent(_:direct:)`; sent with
    /// `sendmsg` from a header on the stack and the payload where it is, so no frame is built
    /// unless the socket leaves some of it.
    private func unsent(payload: ByteBuffer, direct: Bool) -> ByteBuffer? {
        guard direct, let socket else { return WebSocketFraming.frame(payload) }
        let written = WebSocketFraming.withTextHeader(payloadLength: payload.readableBytes) { head in
            let sent = payload.withUnsafeReadableBytes { body in SocketWrite.send(head, body, to: socket) }
            return sent == head.count + payload.readableBytes ? nil : sent
        }
        guard let written else { return nil }
        return rest(of: WebSocketFraming.frame(payload), written: written)
    }

    /// Hands frames to the socket's owner, which writes them once the socket drains; direct
    /// writes wait until it has. Nil when there are none.
    private func handOn(_ frames: ArraySlice<ByteBuffer>, to writer: QueuedWriter) -> EventLoopFuture<Void>? {
        guard let done = writer.write(frames) else { return nil }
        holdDirectWrites(until: done)
        return done
    }

    /// A WebSocket ping frame, after whatever is queued (the unidirectional endpoint's liveness check).
    func ping() {
        owner.eventLoop.execute {
            self.sendControlFrame(opcode: WebSocketFraming.pingOpcode, payload: ByteBuffer())
        }
    }

    func close(_ disconnect: Disconnect) {
        // A unidirectional client reads why from a push too (it cannot ask); not a slow one,
        // whose queue is dropped.
        if unidirectional, disconnect != .slow { _ = write(OutboundMessage(UniWebSocket.disconnectPush(disconnect))) }
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
        let owner = self.owner
        owner.eventLoop.execute {
            var data = owner.allocator.buffer(capacity: 2 + disconnect.reason.utf8.count)
            data.write(webSocketErrorCode: WebSocketErrorCode(codeNumber: disconnect.code))
            data.writeString(disconnect.reason)
            self.sendControlFrame(opcode: WebSocketFraming.closeOpcode, payload: data)
            // A peer that does not answer the close frame is cut off.
            owner.eventLoop.scheduleTask(in: Self.closeTimeout) { owner.close() }
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
