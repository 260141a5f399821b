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
/// `200` whose body streams the pushes. Every other request passes on untouched. Refusals are
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
        case streaming(Client, HTTPStreamTransport)
    }

    private let node: Node
    private var phase = Phase.idle
    /// The handshake timeout, while the first request's head is still being read.
    private var headDeadline: Scheduled<Void>?

    init(node: Node, headDeadline: Scheduled<Void>? = nil) {
        self.node = node
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
            let allowed: Bool = framing == .eventStream ? (head.method == .GET || head.method == .POST) : head.method == .POST
            guard allowed else {
                refuse(context, status: .methodNotAllowed, code: "method_not_allowed", "\(path) takes \(framing == .eventStream ? "GET or POST" : "POST")")
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
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: framing.contentType)
        headers.add(name: "Cache-Control", value: "private, no-cache, no-store, must-revalidate, max-age=0")
        headers.add(name: "X-Accel-Buffering", value: "no")
        if let origin = head.headers.first(name: "Origin") {
            // EventSource on a page of another (allowed) origin reads the stream only with this.
            headers.add(name: "Access-Control-Allow-Origin", value: origin)
            headers.add(name: "Vary", value: "Origin")
        }
        let transport = HTTPStreamTransport(
            channel: context.channel, framing: framing, maxQueueSize: node.configuration.clientQueueMaxSize,
            head: HTTPResponseHead(version: head.version, status: .ok, headers: headers))
        let client = node.makeClient(transport: transport)
        transport.attach(client)
        node.metrics.connectionsAccepted.add(1, ordering: .relaxed)
        phase = .streaming(client, transport)
        let executor = EventLoopTaskExecutor(context.eventLoop)
        Task(executorPreference: executor) { await client.handle(request) }
    }

    private func refuse(_ context: ChannelHandlerContext, status: HTTPResponseStatus, code: String, _ message: String) {
        phase = .refused
        HTTPStreamTransport.writeError(context.channel, status: status, code: code, message: message)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .streaming(let client, let transport) = phase {
            Task {
                await client.transportClosed()
                transport.detach()
            }
        }
        context.fireChannelInactive()
    }
}
