/// The unidirectional HTTP stream endpoints (after Centrifugo's `uni_sse` and `uni_http_stream`):
/// the request read, checked and answered with a response that streams pushes until the end.
import Logging
import NIOCore
import NIOHTTP1
import SwitchboardCore
import Synchronization

/// In the public port's HTTP pipeline, ahead of `HTTPRequestHandler`. A request for
/// `/connection/uni_sse` (`GET` with the connect request in `cf_connect`, as `EventSource` sends
/// it, or `POST` with it as the body) or `/connection/uni_http_stream` (`POST` only) becomes a
/// unidirectional client (`UniWebSocket` has the message forms) on an `HTTPStreamTransport`: a
/// `200` whose body streams the pushes, written by the transport once NIO's HTTP handlers have
/// left the pipeline (`UniStreamConnection`). Every other request passes on untouched. A plain
/// `EventSource` request never gets here: the handshake handler starts those streams itself. Refusals are
/// answered as JSON (`{"error":{"code","message"}}`): 405 `method_not_allowed`, 400
/// `connect_request_required` (a `GET` without a `cf_connect` that decodes), 413
/// `connect_request_too_large`, 403 `origin_not_allowed`; a connect the client refuses is
/// answered by the transport before its stream starts (401 for a token).
final class UniStreamHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let name = "gateway-uni-stream"
    static let eventStreamPath = "/connection/uni_sse"
    static let jsonStreamPath = "/connection/uni_http_stream"

    private enum Phase {
        /// Between requests: the next head decides.
        case idle
        /// Another route's request, passed on to its end.
        case passing
        /// A stream's request, its body being read.
        case reading(HTTPStreamTransport.Framing, HTTPRequestHead, ByteBuffer)
        /// Refused and answered; what else arrives is dropped until the connection closes.
        case refused
        /// Handed to `UniStreamConnection`; this handler is on its way out.
        case streaming
        /// A preflight answered; the connection stays for the next request once it ends.
        case answered
    }

    private let node: Node
    private let socket: CInt?
    private let batcher: FlushBatcher
    private var phase = Phase.idle
    /// The handshake timeout, while the first request's head is still being read.
    private var headDeadline: HandshakeDeadline?

    init(node: Node, socket: CInt?, batcher: FlushBatcher, headDeadline: HandshakeDeadline? = nil) {
        self.node = node
        self.socket = socket
        self.batcher = batcher
        self.headDeadline = headDeadline
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch (phase, part) {
        case (.idle, .head(let head)):
            // A whole head has been read: the handshake timeout is met (a stream lives on).
            headDeadline?.cancel()
            headDeadline = nil
            let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let framing: HTTPStreamTransport.Framing
            if path == Self.eventStreamPath {
                framing = .eventStream
            } else if path == Self.jsonStreamPath {
                framing = .jsonLines
            } else {
                phase = .passing
                context.fireChannelRead(data)
                return
            }
            let methods = framing == .eventStream ? "GET, POST" : "POST"
            if head.method == .OPTIONS {
                preflight(context, head: head, methods: methods)
                return
            }
            let allowed: Bool = framing == .eventStream ? (head.method == .GET || head.method == .POST) : head.method == .POST
            guard allowed else {
                refuse(
                    context, status: .methodNotAllowed, code: "method_not_allowed",
                    "\(path) takes \(framing == .eventStream ? "GET or POST" : "POST")", allow: methods + ", OPTIONS")
                return
            }
            guard
                OriginCheck.allows(
                    origin: head.headers.first(name: "Origin"), host: head.headers.first(name: "Host"),
                    allowed: node.configuration.allowedOrigins)
            else {
                refuse(context, status: .forbidden, code: "origin_not_allowed", "this origin may not connect")
                return
            }
            phase = .reading(framing, head, context.channel.allocator.buffer(capacity: 0))
        case (.reading(let framing, let head, var body), .body(var chunk)):
            guard body.readableBytes + chunk.readableBytes <= node.configuration.maxMessageSize else {
                refuse(context, status: .payloadTooLarge, code: "connect_request_too_large", "the connect request is over max_message_size")
                return
            }
            body.writeBuffer(&chunk)
            phase = .reading(framing, head, body)
        case (.reading(let framing, let head, let body), .end):
            start(context, framing: framing, head: head, body: body)
        case (.passing, _):
            if case .end = part { phase = .idle }
            context.fireChannelRead(data)
        case (.answered, .end):
            phase = .idle
        default:
            // A stream's client sends nothing more that matters; a refused one is being closed.
            break
        }
    }

    private func start(_ context: ChannelHandlerContext, framing: HTTPStreamTransport.Framing, head: HTTPRequestHead, body: ByteBuffer) {
        var request = body
        if head.method == .GET {
            let query = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).dropFirst().first ?? ""
            guard let parameter = try? UniWebSocket.connectRequest(query: query) else {
                refuse(context, status: .badRequest, code: "connect_request_required", "GET needs the connect request, percent-encoded, in cf_connect")
                return
            }
            request = parameter
        }
        phase = .streaming
        // The stream writes its response's bytes itself: NIO's HTTP handlers (and this one) leave.
        let pipeline = context.pipeline.syncOperations
        do {
            try UniStreamConnection.start(
                on: context.channel, socket: socket, node: node, batcher: batcher, framing: framing,
                chunked: head.version.major > 1 || (head.version.major == 1 && head.version.minor >= 1), origin: head.headers.first(name: "Origin"), connectRequest: request,
                lastEventID: head.headers.first(name: "Last-Event-ID"))
            for handler in Self.httpHandlers(in: pipeline) { pipeline.removeHandler(context: handler, promise: nil) }
            pipeline.removeHandler(context: context, promise: nil)
        } catch {
            context.close(promise: nil)
        }
    }

    /// What `configureHTTPServerPipeline(withServerUpgrade:)` and the listener put in the pipeline.
    private static func httpHandlers(in pipeline: ChannelPipeline.SynchronousOperations) -> [ChannelHandlerContext] {
        [
            try? pipeline.context(handlerType: HTTPResponseEncoder.self),
            try? pipeline.context(handlerType: ByteToMessageHandler<HTTPRequestDecoder>.self),
            try? pipeline.context(handlerType: HTTPServerPipelineHandler.self),
            try? pipeline.context(handlerType: NIOHTTPResponseHeadersValidator.self),
            try? pipeline.context(handlerType: HTTPProtocolErrorHandler.self),
            try? pipeline.context(handlerType: HTTPServerUpgradeHandler.self),
            try? pipeline.context(handlerType: HTTPRequestHandler.self),
        ].compactMap { $0 }
    }

    /// A browser's CORS preflight, sent before a cross-origin `fetch` that `POST`s a JSON body or
    /// sets `Last-Event-ID` itself (an `EventSource` reconnecting is not asked about): `204` for an
    /// allowed origin, naming the methods and the two headers a stream request may carry.
    private func preflight(_ context: ChannelHandlerContext, head: HTTPRequestHead, methods: String) {
        guard let origin = head.headers.first(name: "Origin"),
            OriginCheck.allows(origin: origin, host: head.headers.first(name: "Host"), allowed: node.configuration.allowedOrigins)
        else {
            refuse(context, status: .forbidden, code: "origin_not_allowed", "this origin may not connect")
            return
        }
        phase = .answered
        var headers = HTTPHeaders()
        headers.add(name: "Access-Control-Allow-Origin", value: origin)
        headers.add(name: "Access-Control-Allow-Methods", value: methods)
        headers.add(name: "Access-Control-Allow-Headers", value: "Content-Type, Last-Event-ID")
        headers.add(name: "Access-Control-Max-Age", value: "600")
        headers.add(name: "Vary", value: "Origin")
        headers.add(name: "Content-Length", value: "0")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .noContent, headers: headers))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    /// `allow`: the methods the path takes, for a 405.
    private func refuse(
        _ context: ChannelHandlerContext, status: HTTPResponseStatus, code: String, _ message: String, allow: String? = nil
    ) {
        phase = .refused
        HTTPRoutes.Answer.error(Int(status.code), code, message, allow: allow).write(to: context, close: true)
    }
}
