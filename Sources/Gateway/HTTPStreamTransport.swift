/// The outbound side of a unidirectional HTTP stream (`/connection/uni_sse`,
/// `/connection/uni_http_stream`): pushes written as the body of one endless response, its bytes
/// framed here and sent to the socket directly.
import Foundation
import NIOCore
import NIOHTTP1
import SwitchboardCore
import Synchronization

/// A unidirectional connection over a streamed HTTP response, on a NIO channel (NIO's HTTP
/// handlers out of the pipeline by the time it is made) or on a `SocketConnection` of the
/// gateway's own event loop: it writes the response's bytes itself, head and chunks.
///
/// - **Head.** The `200` goes out with the first message (the connect push), so a connect that is
///   refused is answered with an HTTP error instead (401 for a token, 400 for a request that does
///   not decode, JSON `{"error":{"code","message","disconnect"}}`): `EventSource` gives up on
///   those, where it would reconnect after a stream that ended.
/// - **Body.** Chunked (HTTP/1.1; plain bytes until the close for HTTP/1.0), each message in the
///   stream's framing. Messages queue under a lock from any thread and are written once per
///   event-loop tick by the loop's `FlushBatcher`. A message alone in its tick goes out with one
///   `sendmsg` from where it is, the push a view into the publication's shared bytes: its chunk
///   header and event prefix come from the stack, so a fan-out copies nothing per subscriber.
/// - **Event ids.** On `text/event-stream`, a message that moves the client's positions comes with
///   them (`EventStreamID`) and is written with an `id:` line, which `EventSource` sends back as
///   `Last-Event-ID` when it reconnects.
/// - **Direct writes**, as `WebSocketTransport` makes them (`DirectSocketWriter`): only on the
///   event loop, only while the socket is open (the connection handler says when it closes) and
///   its owner holds nothing for it.
/// - **Slow readers.** A client whose queue passes `maxQueueSize`, or whose socket still holds
///   more than the high water mark when a flush starts, is disconnected as slow (3008).
/// - **Closing** writes the disconnect push, ends the body and closes the connection. Such a
///   client cannot answer pings: the stream's own pings only keep proxies from timing it out.
final class HTTPStreamTransport: Transport, BatchFlushed, BatchSender, DirectSocketWriter {
    enum Framing: Sendable {
        /// `text/event-stream`: `data: <json>` events for `EventSource`; a ping is `event: ping`,
        /// which `onmessage` does not see.
        case eventStream
        /// One JSON message per line; a ping is `null`.
        case jsonLines

        var contentType: String {
            switch self {
            case .eventStream: "text/event-stream; charset=utf-8"
            case .jsonLines: "application/json"
            }
        }

        /// What goes before and after a message's JSON.
        fileprivate var prefix: StaticString {
            switch self {
            case .eventStream: "data: "
            case .jsonLines: ""
            }
        }

        fileprivate var suffix: StaticString {
            switch self {
            case .eventStream: "\n\n"
            case .jsonLines: "\n"
            }
        }

        /// The protocol's ping (`{}`) in this framing.
        fileprivate var ping: StaticString {
            switch self {
            case .eventStream: "event: ping\ndata:\n\n"
            case .jsonLines: "null\n"
            }
        }

        fileprivate static func isPing(_ payload: ByteBuffer) -> Bool {
            payload.readableBytes == 2 && payload.getInteger(at: payload.readerIndex, as: UInt16.self) == 0x7B7D
        }

        /// The length of an event's `id:` line (`EventStreamID`); 0 without one, or in the other framing.
        fileprivate func idLineLength(_ eventID: EventStreamID.Value?) -> Int {
            guard case .eventStream = self, let eventID else { return 0 }
            return eventID.count + 5
        }

        /// Writes `id: <id>\n` at the start of `buffer` (`idLineLength` bytes); the bytes written.
        fileprivate func writeIDLine(_ eventID: EventStreamID.Value?, to buffer: UnsafeMutableRawBufferPointer) -> Int {
            guard case .eventStream = self, let eventID else { return 0 }
            var count = 0
            for byte in "id: ".utf8 {
                buffer[count] = byte
                count += 1
            }
            count += eventID.write(to: UnsafeMutableRawBufferPointer(rebasing: buffer[count...]))
            buffer[count] = UInt8(ascii: "\n")
            return count + 1
        }

        /// `<size in hex>\r\n`, a chunk's first line.
        fileprivate static func writeChunkSize(_ size: Int, to buffer: inout ByteBuffer) {
            buffer.reserveCapacity(minimumWritableBytes: 18)
            let written = buffer.withUnsafeMutableWritableBytes { HTTPStreamTransport.writeHex(size, to: $0) }
            buffer.moveWriterIndex(forwardBy: written)
            buffer.writeStaticString("\r\n")
        }

        /// Appends `payload` as one message (one chunk when `chunked`).
        fileprivate func append(_ payload: ByteBuffer, eventID: EventStreamID.Value?, chunked: Bool, to buffer: inout ByteBuffer) {
            if Self.isPing(payload) {
                if chunked { Self.writeChunkSize(ping.utf8CodeUnitCount, to: &buffer) }
                buffer.writeStaticString(ping)
            } else {
                let idLength = idLineLength(eventID)
                if chunked {
                    Self.writeChunkSize(idLength + prefix.utf8CodeUnitCount + payload.readableBytes + suffix.utf8CodeUnitCount, to: &buffer)
                }
                if idLength > 0 {
                    buffer.reserveCapacity(minimumWritableBytes: idLength)
                    let written = buffer.withUnsafeMutableWritableBytes { writeIDLine(eventID, to: $0) }
                    buffer.moveWriterIndex(forwardBy: written)
                }
                buffer.writeStaticString(prefix)
                buffer.writeImmutableBuffer(payload)
                buffer.writeStaticString(suffix)
            }
            if chunked { buffer.writeStaticString("\r\n") }
        }
    }

    private struct State {
        /// The only message queued so far: the push's JSON (a view into shared bytes), and its event id.
        var single: (payload: ByteBuffer, eventID: EventStreamID.Value?)?
        /// Framed messages, once more than one queued.
        var queued: ByteBuffer?
        var queuedBytes = 0
        var flushScheduled = false
        var closed = false
        /// The response head, until the first flush sends it.
        var head: ByteBuffer?
        /// A message has been queued: the stream has started (the head is sent or on its way).
        var started = false
        var writes = DirectWriteState()
    }

    let unidirectional = true
    let answersPings = false
    let wantsEventIDs: Bool
    private let owner: SocketOwner
    let socket: CInt?
    let metrics: Metrics?
    private let batcher: FlushBatcher
    private let framing: Framing
    /// HTTP/1.1 chunked transfer coding; false for an HTTP/1.0 client, whose body ends at the close.
    private let chunked: Bool
    private let maxQueueSize: Int
    private let state = Mutex(State())
    /// Told when the peer stops reading; cleared when the connection ends.
    private let client = Mutex<Client?>(nil)

    init(
        owner: SocketOwner, socket: CInt?, metrics: Metrics?, batcher: FlushBatcher, framing: Framing, chunked: Bool,
        maxQueueSize: Int, head: ByteBuffer
    ) {
        self.owner = owner
        self.socket = socket
        self.metrics = metrics
        self.batcher = batcher
        self.framing = framing
        self.chunked = chunked
        self.maxQueueSize = maxQueueSize
        wantsEventIDs = framing == .eventStream
        state.withLock { $0.head = head }
    }

    /// The `200`'s bytes for a stream in `framing`; `origin` (allowed, or the request would not
    /// have got here) is echoed so an `EventSource` on another origin can read the stream.
    static func responseHead(framing: Framing, chunked: Bool, origin: String?) -> ByteBuffer {
        var head = "HTTP/1.1 200 OK\r\nContent-Type: \(framing.contentType)\r\n"
        head += "Cache-Control: private, no-cache, no-store, must-revalidate, max-age=0\r\nX-Accel-Buffering: no\r\n"
        if let origin {
            head += "Access-Control-Allow-Origin: \(origin)\r\nVary: Origin\r\n"
        }
        head += chunked ? "Transfer-Encoding: chunked\r\n\r\n" : "Connection: close\r\n\r\n"
        return ByteBuffer(string: head)
    }

    func attach(_ client: Client) {
        self.client.withLock { $0 = client }
    }

    func detach() {
        client.withLock { $0 = nil }
    }

    /// The socket is closed (whichever handler owns it says so): no more direct writes, and the
    /// client leaves its channels in the background, detached from this transport once it has.
    func socketClosed() {
        channelClosed()
        client.withLock { $0 }?.transportClosedInBackground { [self] in detach() }
    }

    func withDirectWriteState<Result>(_ body: (inout DirectWriteState) -> Result) -> Result {
        state.withLock { body(&$0.writes) }
    }

    var fanOutBatcher: FlushBatcher? { batcher }

    func write(_ message: OutboundMessage) -> Bool {
        write(message, eventID: nil)
    }

    func write(_ message: OutboundMessage, eventID: EventStreamID.Value?) -> Bool {
        let payload = UniWebSocket.unwrap(message).payload
        let (accepted, schedule) = state.withLock { state -> (Bool, Bool) in
            guard !state.closed else { return (true, false) }
            guard state.queuedBytes + payload.readableBytes <= maxQueueSize else { return (false, false) }
            state.queuedBytes += payload.readableBytes + 8
            state.started = true
            if state.single == nil, state.queued == nil {
                state.single = (payload, eventID)
            } else {
                if state.queued == nil { state.queued = ByteBufferAllocator().buffer(capacity: 2 * payload.readableBytes + 64) }
                if let single = state.single.take() {
                    framing.append(single.payload, eventID: single.eventID, chunked: chunked, to: &state.queued!)
                }
                framing.append(payload, eventID: eventID, chunked: chunked, to: &state.queued!)
            }
            let schedule = !state.flushScheduled
            state.flushScheduled = true
            return (true, schedule)
        }
        if schedule { batcher.schedule(self) }
        return accepted
    }

    func write(_ message: OutboundMessage, into batch: SendBatch) -> Bool {
        write(message, eventID: nil, into: batch)
    }

    /// During a fan-out on this connection's loop: a publication with nothing queued before it,
    /// for a socket its owner holds nothing for, once the response head is out, joins `batch` (its
    /// prefix from the stack, its payload where it is, its suffix a constant) without being
    /// queued or flushed. Anything else is queued. Added under the lock, so a message queued from
    /// another thread meanwhile is flushed by a later task of the loop, after the batch is sent.
    func write(_ message: OutboundMessage, eventID: EventStreamID.Value?, into batch: SendBatch) -> Bool {
        let payload = UniWebSocket.unwrap(message).payload
        guard let socket, !Framing.isPing(payload), framing.idLineLength(eventID) <= Self.maxStackIDLength else {
            return write(message, eventID: eventID)
        }
        let added = state.withLock { state -> Bool in
            guard !state.closed, !state.flushScheduled, state.head == nil, state.single == nil, state.queued == nil,
                state.writes.direct, state.writes.writable
            else { return false }
            withPrefix(payloadLength: payload.readableBytes, eventID: eventID) { prefix in
                batch.add(head: prefix, body: payload, tail: messageTail, socket: socket, sender: self)
            }
            return true
        }
        return added || write(message, eventID: eventID)
    }

    /// A message left to the tick's `SendBatch`: what the socket did not take goes to the owner.
    func sent(_ outcome: SendOutcome) {
        switch outcome {
        case .all: break
        case .part(let whole, let written): handToOwner(rest(of: whole, written: written))
        case .unknown: owner.close()
        }
    }

    /// Writes what queued (after the head, the first time); on the event loop.
    func flush() {
        let (head, single, queued, writable, direct) = state.withLock { state in
            state.flushScheduled = false
            state.queuedBytes = 0
            return (state.head.take(), state.single.take(), state.queued.take(), state.writes.writable, state.writes.direct)
        }
        guard head != nil || single != nil || queued != nil else { return }
        guard writable else {
            client.withLock { $0 }?.slow()
            return
        }
        if head == nil, queued == nil, let single, !Framing.isPing(single.payload) {
            // The common case: one push since the last tick, sent from where it is.
            if let rest = unsent(payload: single.payload, eventID: single.eventID, direct: direct) { handToOwner(rest) }
            return
        }
        var bytes = head ?? owner.allocator.buffer(capacity: 0)
        if let queued { bytes.writeImmutableBuffer(queued) }
        if let single { framing.append(single.payload, eventID: single.eventID, chunked: chunked, to: &bytes) }
        send(bytes, direct: direct)
    }

    /// Sends `bytes`, directly when it may; what the socket does not take goes to its owner.
    /// Returns nil when the socket took everything, else when the owner has written the rest.
    @discardableResult
    private func send(_ bytes: ByteBuffer, direct: Bool) -> EventLoopFuture<Void>? {
        unsent(bytes, direct: direct).map { handToOwner($0) }
    }

    /// What of one message's framing of `payload` is left for the owner after one `sendmsg` (nil when
    /// the socket took it all); the prefix (chunk size, `id:`, `data: `) is built on the stack.
    private func unsent(payload: ByteBuffer, eventID: EventStreamID.Value?, direct: Bool) -> ByteBuffer? {
        let idLineLength = framing.idLineLength(eventID)
        guard direct, let socket, idLineLength <= Self.maxStackIDLength else {
            var bytes = owner.allocator.buffer(capacity: payload.readableBytes + idLineLength + 32)
            framing.append(payload, eventID: eventID, chunked: chunked, to: &bytes)
            return unsent(bytes, direct: direct)
        }
        let tail = messageTail
        let (total, written) = withPrefix(payloadLength: payload.readableBytes, eventID: eventID) { prefix -> (Int, Int) in
            let sent = payload.withUnsafeReadableBytes { body in
                SocketWrite.send(prefix, body, UnsafeRawBufferPointer(start: tail.utf8Start, count: tail.utf8CodeUnitCount), to: socket)
            }
            return (prefix.count + payload.readableBytes + tail.utf8CodeUnitCount, sent)
        }
        guard written < total else { return nil }
        var framed = owner.allocator.buffer(capacity: total)
        framing.append(payload, eventID: eventID, chunked: chunked, to: &framed)
        return rest(of: framed, written: written)
    }

    /// What goes in front of a message's payload (the chunk size and CRLF, the `id:` line,
    /// `data: `), built on the stack for `body`; the event id no longer than `maxStackIDLength`.
    private func withPrefix<Result>(
        payloadLength: Int, eventID: EventStreamID.Value?, _ body: (UnsafeRawBufferPointer) -> Result
    ) -> Result {
        let idLineLength = framing.idLineLength(eventID)
        let bodyLength = idLineLength + framing.prefix.utf8CodeUnitCount + payloadLength + framing.suffix.utf8CodeUnitCount
        // Chunk size (up to 16 hex digits) and CRLF, the id line, `data: `.
        var prefix: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &prefix) { raw -> Result in
            var count = 0
            if chunked {
                count = Self.writeHex(bodyLength, to: raw)
                raw[count] = UInt8(ascii: "\r")
                raw[count + 1] = UInt8(ascii: "\n")
                count += 2
            }
            count += framing.writeIDLine(eventID, to: UnsafeMutableRawBufferPointer(rebasing: raw[count...]))
            let eventPrefix = UnsafeRawBufferPointer(start: framing.prefix.utf8Start, count: framing.prefix.utf8CodeUnitCount)
            UnsafeMutableRawBufferPointer(rebasing: raw[count..<count + eventPrefix.count]).copyMemory(from: eventPrefix)
            count += eventPrefix.count
            return body(UnsafeRawBufferPointer(rebasing: raw[..<count]))
        }
    }

    /// What follows a message's payload: its suffix, and the chunk's closing CRLF when chunked.
    private var messageTail: StaticString { chunked ? framing.chunkedSuffix : framing.suffix }

    /// The longest `id:` line the one-`sendmsg` path builds on the stack (96 bytes less the chunk
    /// size and `data: `); a longer one is framed in a buffer.
    private static let maxStackIDLength = 64

    /// `value` in lower-case hex at the start of `buffer`; the digits written.
    fileprivate static func writeHex(_ value: Int, to buffer: UnsafeMutableRawBufferPointer) -> Int {
        var digits = 1
        while value >> (4 * digits) != 0 { digits += 1 }
        for index in 0..<digits {
            let nibble = (value >> (4 * (digits - 1 - index))) & 0xF
            buffer[index] = nibble < 10 ? UInt8(ascii: "0") + UInt8(nibble) : UInt8(ascii: "a") + UInt8(nibble - 10)
        }
        return digits
    }

    /// Hands `bytes` to the socket's owner (NIO's channel, or the own connection's queue), which
    /// writes them once the socket drains; on the event loop.
    @discardableResult
    private func handToOwner(_ bytes: ByteBuffer) -> EventLoopFuture<Void> {
        let done = owner.eventLoop.makePromise(of: Void.self)
        holdDirectWrites(until: done.futureResult)
        switch owner {
        case .channel(let channel): channel.writeAndFlush(bytes, promise: done)
        case .connection(let connection): connection.write(CollectionOfOne(bytes), promise: done)
        }
        return done.futureResult
    }

    func close(_ disconnect: Disconnect) {
        // A started stream's client reads why from a push (a slow one's queue is dropped instead).
        let started = state.withLock { $0.started }
        if started, disconnect != .slow { _ = write(OutboundMessage(UniWebSocket.disconnectPush(disconnect))) }
        let alreadyClosed = state.withLock { state in
            defer { state.closed = true }
            if disconnect == .slow {
                state.single = nil
                state.queued = nil
            }
            return state.closed
        }
        guard !alreadyClosed else { return }
        let owner = self.owner
        owner.eventLoop.execute {
            guard started else {
                self.refuse(disconnect)
                return
            }
            self.flush()
            let direct = self.state.withLock { $0.writes.direct }
            let end = self.chunked ? ByteBuffer(string: "0\r\n\r\n") : owner.allocator.buffer(capacity: 0)
            if end.readableBytes > 0, disconnect != .slow, let written = self.send(end, direct: direct) {
                written.whenComplete { _ in owner.close() }
            } else {
                owner.close()
            }
        }
    }

    /// The HTTP answer to a connect refused before the stream started; on the event loop.
    private func refuse(_ disconnect: Disconnect) {
        let status: HTTPResponseStatus =
            switch disconnect.code {
            case Disconnect.invalidToken.code, Disconnect.expired.code: .unauthorized
            case Disconnect.badRequest.code: .badRequest
            case Disconnect.tooManyRequests.code: .tooManyRequests
            default: .serviceUnavailable
            }
        let body = Self.errorBody(code: disconnect.reason.replacingOccurrences(of: " ", with: "_"), message: disconnect.reason, disconnect: disconnect.code)
        var bytes = ByteBuffer(
            string: "HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\nContent-Type: application/json\r\nContent-Length: \(body.readableBytes)\r\nConnection: close\r\n\r\n")
        bytes.writeImmutableBuffer(body)
        let owner = self.owner
        if let written = send(bytes, direct: state.withLock { $0.writes.direct }) {
            written.whenComplete { _ in owner.close() }
        } else {
            owner.close()
        }
    }

    /// `{"error":{"code","message"[,"disconnect"]}}`.
    static func errorBody(code: String, message: String, disconnect: Int? = nil) -> ByteBuffer {
        var writer = JSONWriter(capacity: 128)
        writer.beginObject()
        writer.key("error")
        writer.beginObject()
        writer.field("code", code)
        writer.field("message", message)
        if let disconnect { writer.field("disconnect", disconnect) }
        writer.endObject()
        writer.endObject()
        return ByteBuffer(string: writer.output)
    }
}

extension HTTPStreamTransport.Framing {
    /// The message's suffix and the chunk's closing CRLF.
    fileprivate var chunkedSuffix: StaticString {
        switch self {
        case .eventStream: "\n\n\r\n"
        case .jsonLines: "\n\r\n"
        }
    }
}
