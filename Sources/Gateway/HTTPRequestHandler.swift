/// The NIO handler that answers plain HTTP requests from `HTTPRoutes`.
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// Answers one plain HTTP request at a time (the server API, metrics, health, and refused upgrades).
final class HTTPRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private struct Request {
        var head: HTTPRequestHead
        var body: ByteBuffer
        var tooLarge = false
    }

    private let routes: HTTPRoutes
    static let name = "gateway-http"

    private var request: Request?

    init(routes: HTTPRoutes) {
        self.routes = routes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = Request(head: head, body: context.channel.allocator.buffer(capacity: 0))
        case .body(var chunk):
            guard request != nil else { return }
            if request!.body.readableBytes + chunk.readableBytes > HTTPRoutes.maxBodySize {
                request!.tooLarge = true
            } else {
                request!.body.writeBuffer(&chunk)
            }
        case .end:
            guard let request else { return }
            self.request = nil
            respond(context: context, request)
        }
    }

    private func respond(context: ChannelHandlerContext, _ request: Request) {
        let head = request.head
        let keepAlive = head.isKeepAlive
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let promise = context.eventLoop.makePromise(of: HTTPRoutes.Answer.self)
        if request.tooLarge {
            promise.succeed(.error(413, "body_too_large", "the body is over \(HTTPRoutes.maxBodySize) bytes"))
        } else {
            let routes = self.routes
            let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
            let headers = head.headers
            let body = request.body
            promise.completeWithTask {
                await routes.respond(method: head.method.rawValue, path: path, header: { headers.first(name: $0) }, body: body)
            }
        }
        promise.futureResult.whenSuccess { answer in
            answer.write(to: bound.value, version: head.version, close: !keepAlive)
        }
    }
}

extension HTTPRoutes.Answer {
    /// Writes the answer as one response (head, body, end) from `context`, whose next handler
    /// toward the socket takes `HTTPServerResponsePart`s. `close`: with `Connection: close`, and
    /// the connection closed once it is written.
    func write(to context: ChannelHandlerContext, version: HTTPVersion = .http1_1, close: Bool) {
        var headers = HTTPHeaders()
        if let contentType { headers.add(name: "Content-Type", value: contentType) }
        if let allow { headers.add(name: "Allow", value: allow) }
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        if close { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: status), headers: headers)
        context.write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
        if !body.isEmpty { context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil) }
        let channel = context.channel
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).whenComplete { _ in
            if close { channel.close(promise: nil) }
        }
    }
}
