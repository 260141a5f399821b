/// The answer to a request the HTTP parser cannot read: 400 with the gateway's JSON error.
import NIOCore
import NIOHTTP1

/// Stands where NIO's `HTTPServerProtocolErrorHandler` would in the public port's HTTP pipeline:
/// a parse error (a bad request line, a malformed header, a bad `Content-Length`) is answered with
/// 400 `malformed_request` as `{"error":{"code","message"}}` and the connection closed. A response
/// already under way is not interrupted: the connection is only closed.
final class HTTPProtocolErrorHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    static let name = "gateway-http-errors"
    private static let answer = HTTPRoutes.Answer.error(400, "malformed_request", "the request is not HTTP/1 this server can read")

    /// A response's head went out and its end has not.
    private var responding = false

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        if responding {
            context.close(promise: nil)
        } else {
            Self.answer.write(to: context, close: true)
        }
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200 || head.status == .switchingProtocols: responding = true
        case .end: responding = false
        default: break
        }
        context.write(data, promise: promise)
    }
}
