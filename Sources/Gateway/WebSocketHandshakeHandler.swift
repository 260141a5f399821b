/// The public port's first handler: the WebSocket opening handshake answered, and an `EventSource`
/// stream started, without NIO's HTTP server pipeline, which is built only for the other requests.
import Glibc
import NIOCore

/// The first handler of every public connection. It collects the request head; a plain WebSocket
/// upgrade is answered with `101` written to the socket (NIO holds nothing for the connection yet),
/// after which `upgrade` installs the WebSocket handler and this handler leaves the pipeline,
/// passing on any bytes that followed the head. The `101` of a unidirectional upgrade with its
/// connect request in the URL is not written here but handed to `upgrade`: the server answers that
/// request at once and the client waits, so the `101` goes out with the connect push in one
/// `send`. (Without one in the URL the client sends its connect request after the `101`.) A plain
/// `EventSource` request (`GET /connection/uni_sse` whose `cf_connect` decodes, from an allowed
/// origin) goes to `eventStream`, which starts the stream in the same way. Anything else is handed,
/// bytes and all, to the pipeline `fallback` installs (HTTP/1 with NIO's upgrader), which answers
/// it as before. Building that pipeline for every connection cost a fifth of a new connection's CPU.
///
/// A connection whose request head has not ended within the handshake timeout (`deadlines`) after
/// it was accepted is closed (a head that does not end within 8 KB goes to the HTTP pipeline, and
/// the deadline goes with it, for the pipeline to cancel once it has read a whole head).
final class WebSocketHandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private enum Phase {
        case reading
        /// The `101` is partly with NIO; bytes that arrive meanwhile wait in `received`.
        case answering
        case done
    }

    private let socket: CInt
    private let deadlines: HandshakeDeadlines
    private var deadline: HandshakeDeadline?
    private let allowsOrigin: (_ origin: String?, _ host: String?) -> Bool
    private let upgrade: (ChannelHandlerContext, WebSocketHandshake.Upgrade, _ unsentResponse: [UInt8]?) throws -> Void
    private let eventStream: (ChannelHandlerContext, WebSocketHandshake.EventStream, _ connectRequest: ByteBuffer) throws -> Void
    private let fallback: (ChannelHandlerContext, _ headDeadline: HandshakeDeadline?) throws -> Void
    private var received: ByteBuffer?
    private var phase = Phase.reading

    init(
        socket: CInt, deadlines: HandshakeDeadlines, allowsOrigin: @escaping (_ origin: String?, _ host: String?) -> Bool,
        upgrade: @escaping (ChannelHandlerContext, WebSocketHandshake.Upgrade, _ unsentResponse: [UInt8]?) throws -> Void,
        eventStream: @escaping (ChannelHandlerContext, WebSocketHandshake.EventStream, _ connectRequest: ByteBuffer) throws -> Void,
        fallback: @escaping (ChannelHandlerContext, _ headDeadline: HandshakeDeadline?) throws -> Void
    ) {
        self.socket = socket
        self.deadlines = deadlines
        self.allowsOrigin = allowsOrigin
        self.upgrade = upgrade
        self.eventStream = eventStream
        self.fallback = fallback
    }

    func handlerAdded(context: ChannelHandlerContext) {
        deadline = deadlines.start(closing: context.channel)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        context.fireChannelInactive()
    }

    private static let headEnd = Array("\r\n\r\n".utf8)
    private static let maxBufferedWhileAnswering = 65536

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if received == nil {
            received = bytes
        } else {
            received!.writeBuffer(&bytes)
        }
        guard case .reading = phase else {
            // The peer sends on without reading the 101 that waits for its socket: not a
            // WebSocket client worth buffering for.
            if received!.readableBytes > Self.maxBufferedWhileAnswering { context.close(promise: nil) }
            return
        }
        let outcome = received!.withUnsafeReadableBytes { WebSocketHandshake.read($0) }
        switch outcome {
        case .incomplete:
            return
        case .other:
            // The deadline stays for a head the HTTP pipeline is still reading.
            let headComplete = received!.readableBytesView.firstRange(of: Self.headEnd) != nil
            let deadline = headComplete ? nil : self.deadline
            handOver(context, install: { [fallback] in try fallback($0, deadline) }, headComplete: headComplete)
        case .upgrade(let request):
            guard allowsOrigin(request.origin, request.host) else {
                // Refused by the HTTP pipeline's upgrader, which logs it and answers 404.
                handOver(context, install: { [fallback] in try fallback($0, nil) }, headComplete: true)
                return
            }
            received!.moveReaderIndex(forwardBy: request.headLength)
            answer(context, request)
        case .eventStream(let request):
            guard let connect = request.plainConnectRequest(allowedBy: allowsOrigin) else {
                handOver(context, install: { [fallback] in try fallback($0, nil) }, headComplete: true)
                return
            }
            received!.moveReaderIndex(forwardBy: request.headLength)
            handOver(context, install: { [eventStream] in try eventStream($0, request, connect) })
        }
    }

    /// Writes the `101`: with one `send` when the socket takes it all (nearly always: a new
    /// socket's buffer is empty), else the rest through NIO, upgrading once it is written (the
    /// deadline still runs until then).
    private func answer(_ context: ChannelHandlerContext, _ request: WebSocketHandshake.Upgrade) {
        let response = WebSocketHandshake.response(key: request.key)
        if request.sendsResponseWithFirstFrame {
            handOver(context, install: { [upgrade] context in try upgrade(context, request, response) })
            return
        }
        let upgrade = { [upgrade] (context: ChannelHandlerContext) throws in try upgrade(context, request, nil) }
        let sent = response.withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if sent == response.count {
            handOver(context, install: upgrade)
            return
        }
        guard sent >= 0 || errno == EAGAIN || errno == EWOULDBLOCK else {
            phase = .done
            context.close(promise: nil)
            return
        }
        phase = .answering
        var rest = context.channel.allocator.buffer(capacity: response.count)
        rest.writeBytes(response[max(sent, 0)...])
        let bound = NIOLoopBound((handler: self, context: context, upgrade: upgrade), eventLoop: context.eventLoop)
        context.writeAndFlush(NIOAny(rest)).whenComplete { result in
            let (handler, context, upgrade) = bound.value
            switch result {
            case .success: handler.handOver(context, install: upgrade)
            case .failure: context.close(promise: nil)
            }
        }
    }

    /// Installs the next handlers after this one, passes them what was read, and leaves.
    private func handOver(_ context: ChannelHandlerContext, install: (ChannelHandlerContext) throws -> Void, headComplete: Bool = true) {
        phase = .done
        if headComplete { deadline?.cancel() }
        do {
            try install(context)
        } catch {
            context.close(promise: nil)
            return
        }
        if let rest = received, rest.readableBytes > 0 {
            received = nil
            context.fireChannelRead(wrapInboundOut(rest))
            context.fireChannelReadComplete()
        }
        received = nil
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}

extension WebSocketHandshake.Upgrade {
    /// A unidirectional upgrade with its connect request in the URL: the server answers that
    /// request at once and the client sends nothing meanwhile, so the `101` can wait and go out in
    /// one `send` with the connect push. (Here, not beside the head's reader: the fuzz target
    /// builds that file alone.)
    var sendsResponseWithFirstFrame: Bool {
        guard endpoint == .unidirectional, let query else { return false }
        return UniWebSocket.hasConnectParameter(query: Substring(query))
    }
}

extension WebSocketHandshake.EventStream {
    /// The connect request of a plain `EventSource` request, which the handshake handlers start
    /// as a stream themselves: from an allowed origin, with a `cf_connect` that decodes. Nil for
    /// anything else, which the HTTP pipeline answers (refusals included).
    func plainConnectRequest(allowedBy allowsOrigin: (_ origin: String?, _ host: String?) -> Bool) -> ByteBuffer? {
        guard allowsOrigin(origin, host), let query else { return nil }
        return try? UniWebSocket.connectRequest(query: Substring(query))
    }
}
