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
            let body = HTTPStreamTransport.errorBody(code: "malformed_request", message: "the request is not HTTP/1 this server can read")
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(body.readableBytes))
            headers.add(name: "Connection", value: "close")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .badRequest, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
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
