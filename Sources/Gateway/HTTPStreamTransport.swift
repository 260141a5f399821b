/// The outbound side of a unidirectional HTTP stream (`/connection/uni_sse`,
/// `/connection/uni_http_stream`): pushes written as the body of one endless response.
import Foundation
import NIOCore
import NIOHTTP1
import SwitchboardCore
import Synchronization

/// A unidirectional connection over a streamed HTTP response (chunked by NIO's encoder). The `200`
/// head goes out with the first message (the connect push), so a connect that is refused is
/// answered with an HTTP error instead (401 for a token, 400 for a request that does not decode,
/// JSON `{"error":{"code","message","disconnect"}}`): `EventSource` gives up on those, where it
/// would reconnect after a stream that ended. Messages queue under a lock from any thread and
/// are written once per event-loop tick, each in the stream's framing. A client whose queue
/// passes `maxQueueSize`, or whose socket still holds more than the high water mark when a flush
/// starts, is disconnected as slow (3008). Closing a stream writes the disconnect push, ends the
/// response and closes the connection. Such a client cannot answer pings: the stream's own pings
/// only keep proxies from timing it out.
final class HTTPStreamTransport: Transport {
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

        func append(_ payload: ByteBuffer, to buffer: inout ByteBuffer) {
            let ping = payload.readableBytes == 2 && payload.getInteger(at: payload.readerIndex, as: UInt16.self) == 0x7B7D
            switch self {
            case .eventStream where ping:
                buffer.writeStaticString("event: ping\ndata:\n\n")
            case .eventStream:
                buffer.writeStaticString("data: ")
                buffer.writeImmutableBuffer(payload)
                buffer.writeStaticString("\n\n")
            case .jsonLines where ping:
                buffer.writeStaticString("null\n")
            case .jsonLines:
                buffer.writeImmutableBuffer(payload)
                buffer.writeInteger(UInt8(ascii: "\n"))
            }
        }
    }

    private struct State {
        var queued: ByteBuffer?
        var queuedBytes = 0
        var flushScheduled = false
        var closed = false
        /// The response head, until the first flush sends it.
        var head: HTTPResponseHead?
        /// A message has been queued: the stream has started (the head is sent or on its way).
        var started = false
    }

    let unidirectional = true
    let answersPings = false
    private let channel: any NIOCore.Channel
    private let framing: Framing
    private let maxQueueSize: Int
    private let state = Mutex(State())
    /// Told when the peer stops reading; cleared when the connection ends.
    private let client = Mutex<Client?>(nil)

    init(channel: any NIOCore.Channel, framing: Framing, maxQueueSize: Int, head: HTTPResponseHead) {
        self.channel = channel
        self.framing = framing
        self.maxQueueSize = maxQueueSize
        state.withLock { $0.head = head }
    }

    func attach(_ client: Client) {
        self.client.withLock { $0 = client }
    }

    func detach() {
        client.withLock { $0 = nil }
    }

    func write(_ message: OutboundMessage) -> Bool {
        let payload = UniWebSocket.unwrap(message).payload
        let (accepted, schedule) = state.withLock { state -> (Bool, Bool) in
            guard !state.closed else { return (true, false) }
            guard state.queuedBytes + payload.readableBytes <= maxQueueSize else { return (false, false) }
            state.queuedBytes += payload.readableBytes + 8
            if state.queued == nil { state.queued = ByteBufferAllocator().buffer(capacity: payload.readableBytes + 16) }
            framing.append(payload, to: &state.queued!)
            state.started = true
            let schedule = !state.flushScheduled
            state.flushScheduled = true
            return (true, schedule)
        }
        if schedule { channel.eventLoop.execute { self.flush() } }
        return accepted
    }

    /// Writes what queued; on the event loop.
    private func flush() {
        let (queued, head) = state.withLock { state in
            state.flushScheduled = false
            state.queuedBytes = 0
            return (state.queued.take(), state.head.take())
        }
        if let head { channel.write(HTTPServerResponsePart.head(head), promise: nil) }
        guard let queued else { return }
        guard channel.isWritable else {
            client.withLock { $0 }?.slow()
            return
        }
        channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(queued)), promise: nil)
    }

    func close(_ disconnect: Disconnect) {
        // A started stream's client reads why from a push (a slow one's queue is dropped instead).
        let started = state.withLock { $0.started }
        if started, disconnect != .slow { _ = write(OutboundMessage(UniWebSocket.disconnectPush(disconnect))) }
        let alreadyClosed = state.withLock { state in
            defer { state.closed = true }
            if disconnect == .slow { state.queued = nil }
            return state.closed
        }
        guard !alreadyClosed else { return }
        let channel = self.channel
        channel.eventLoop.execute {
            if started {
                self.flush()
                channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in channel.close(promise: nil) }
            } else {
                Self.refuse(channel, disconnect)
            }
        }
    }

    /// The HTTP answer to a connect refused before the stream started.
    private static func refuse(_ channel: any NIOCore.Channel, _ disconnect: Disconnect) {
        let status: HTTPResponseStatus =
            switch disconnect.code {
            case Disconnect.invalidToken.code, Disconnect.expired.code: .unauthorized
            case Disconnect.badRequest.code: .badRequest
            case Disconnect.tooManyRequests.code: .tooManyRequests
            default: .serviceUnavailable
            }
        writeError(
            channel, status: status, code: disconnect.reason.replacingOccurrences(of: " ", with: "_"), message: disconnect.reason,
            disconnect: disconnect.code)
    }

    /// A whole `{"error":{"code","message"[,"disconnect"]}}` answer, after which the connection
    /// closes; on the event loop.
    static func writeError(_ channel: any NIOCore.Channel, status: HTTPResponseStatus, code: String, message: String, disconnect: Int? = nil) {
        var writer = JSONWriter(capacity: 128)
        writer.beginObject()
        writer.key("error")
        writer.beginObject()
        writer.field("code", code)
        writer.field("message", message)
        if let disconnect { writer.field("disconnect", disconnect) }
        writer.endObject()
        writer.endObject()
        let body = ByteBuffer(string: writer.output)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        headers.add(name: "Connection", value: "close")
        channel.write(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers)), promise: nil)
        channel.write(HTTPServerResponsePart.body(.byteBuffer(body)), promise: nil)
        channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in channel.close(promise: nil) }
    }
}
