/// The api's answer to a request the HTTP parser cannot read: 400 `malformed_request` in the one
/// JSON error shape, before any route or middleware sees it; and the same edge for the plain
/// listeners (the api's internal one, the worker's health one).
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import SwitchboardCore

/// Sits right after the HTTP codec of each api connection. A parse error (a bad request line, a
/// malformed header, a bad `Content-Length`, bytes that are not HTTP/1) is answered with
/// `{"error":{"code":"malformed_request","message","status":400}}` and the connection closed; the
/// error goes no further, so Hummingbird does not answer it a second time with its empty 400. A
/// response already under way is not interrupted: the connection is only closed.
final class HTTPParseErrorHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// A response's head went out and its end has not.
    private var responding = false

    static let body: ByteBuffer = {
        let error = ErrorBody(
            error: .init(
                code: SwitchboardError.Code.malformedRequest.rawValue, message: "the request is not HTTP/1 this server can read",
                status: 400))
        return ByteBuffer(bytes: (try? JSONEncoder().encode(error)) ?? Data())
    }()

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        let channel = context.channel
        guard !responding else {
            channel.close(promise: nil)
            return
        }
        responding = true
        let head = HTTPResponse(
            status: .badRequest,
            headerFields: [
                .contentType: "application/json; charset=utf-8", .contentLength: String(Self.body.readableBytes), .connection: "close",
            ])
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(Self.body)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
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

/// The HTTP edge of a plain Hummingbird listener (no turn streams): errors in the one JSON shape
/// (a 404 or 405 included) and a parse error answered as JSON instead of Hummingbird's empty 400.
/// The api's internal listener uses it; the app assembly hands it to the worker's health listener.
public enum PlainListenerEdge {
    /// Adds the JSON error middleware in front of the routes.
    @Sendable public static func configure(_ router: Router<BasicRequestContext>) {
        router.add(middleware: JSONErrorMiddleware())
    }

    /// The handlers after the HTTP codec of each connection.
    @Sendable public static func channelHandlers() -> [any RemovableChannelHandler] {
        [HTTPParseErrorHandler()]
    }
}
