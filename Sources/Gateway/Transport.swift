/// What a client writes to: the `Transport` protocol and the `OutboundMessage` it carries.
import NIOCore

/// Where a client's messages go. `write` only queues (it never blocks); it answers false once the
/// client's queue limit is exceeded, and the caller disconnects the client as slow.
protocol Transport: AnyObject, Sendable {
    func write(_ message: OutboundMessage) -> Bool
    func close(_ disconnect: Disconnect)
    /// A connection of the unidirectional endpoint (`UniWebSocket`): its client sends one connect
    /// request and no commands.
    var unidirectional: Bool { get }
    /// Whether the client can answer pings at all (an HTTP stream cannot); one that cannot is
    /// pinged to keep proxies from timing it out, and never closed for a missing pong.
    var answersPings: Bool { get }
    /// A transport-level ping (a WebSocket ping frame) next to the protocol's `{}`, for clients
    /// that do not answer `{}`.
    func ping()
    /// Whether messages that move the client's positions should come with them as an event id
    /// (`EventStreamID`): an `EventSource` stream, which sends the last one back when it reconnects.
    var wantsEventIDs: Bool { get }
    /// `write(message)`, the message carrying `eventID` (only asked of a transport that wants ids).
    func write(_ message: OutboundMessage, eventID: EventStreamID.Value?) -> Bool
    /// The batcher of the event loop the connection's socket is served on; a publication is fanned
    /// out to the connections of one loop by a task on that loop (`FlushBatcher.fanOut`). Nil: the
    /// transport is written from wherever the broker delivers.
    var fanOutBatcher: FlushBatcher? { get }
    /// `write(message)` from the transport's own event loop during a fan-out: a message that can
    /// go to the socket now may be added to `batch`, which the fan-out sends before it returns.
    func write(_ message: OutboundMessage, into batch: SendBatch) -> Bool
    /// `write(message, eventID:)` from the transport's own event loop during a fan-out, as above.
    func write(_ message: OutboundMessage, eventID: EventStreamID.Value?, into batch: SendBatch) -> Bool
}

extension Transport {
    func write(_ message: String) -> Bool {
        write(OutboundMessage(message))
    }

    var unidirectional: Bool { false }

    var answersPings: Bool { true }

    func ping() {}

    var wantsEventIDs: Bool { false }

    func write(_ message: OutboundMessage, eventID: EventStreamID.Value?) -> Bool { write(message) }

    var fanOutBatcher: FlushBatcher? { nil }

    func write(_ message: OutboundMessage, into batch: SendBatch) -> Bool { write(message) }

    func write(_ message: OutboundMessage, eventID: EventStreamID.Value?, into batch: SendBatch) -> Bool {
        write(message, eventID: eventID)
    }
}

/// One server → client message: its JSON text and, for a message many connections send (a
/// fanned-out publication), the whole WebSocket frame built once and shared by all of them.
///
/// It holds one buffer: the payload alone, or for a shared message the frame, whose payload is the
/// part after the header. Each connection a publication is queued for copies the message, and a
/// copy is an atomic increment on the buffer's storage, which every subscriber on both event loops
/// shares: one buffer is one increment (and one release), not two.
struct OutboundMessage: Sendable {
    /// The payload, or (`headerSize > 0`) the whole frame.
    private let bytes: ByteBuffer
    /// The frame header's size in front of the payload; 0 when `bytes` is the payload alone.
    private let headerSize: Int

    init(_ text: String) {
        self.init(payload: ByteBuffer(string: text))
    }

    /// A connection's own message from its JSON text's bytes.
    init(payload: ByteBuffer) {
        bytes = payload
        headerSize = 0
    }

    init(shared text: String) {
        self.init(sharedPayload: ByteBuffer(string: text))
    }

    init(sharedPayload: ByteBuffer) {
        bytes = WebSocketFraming.frame(sharedPayload)
        headerSize = WebSocketFraming.headerSize(payloadLength: sharedPayload.readableBytes)
    }

    /// The JSON text's size in bytes.
    var payloadSize: Int { bytes.readableBytes - headerSize }

    /// The JSON text (for a shared message, a view into its frame).
    var payload: ByteBuffer {
        headerSize == 0 ? bytes : bytes.getSlice(at: bytes.readerIndex + headerSize, length: payloadSize)!
    }

    /// The pre-built frame of a shared message; nil for one connection's own message.
    var frame: ByteBuffer? { headerSize == 0 ? nil : bytes }

    /// Runs `body` with the message as a whole frame: the shared one without a copy, else one built now.
    func withFrame<Result>(_ body: (ByteBuffer) -> Result) -> Result {
        headerSize == 0 ? body(WebSocketFraming.frame(bytes)) : body(bytes)
    }
}
