/// The first handler of a public connection on the gateway's own event loop: a WebSocket upgrade
/// or an `EventSource` request answered there, anything else handed to NIO with the bytes read so far.
import NIOCore

/// Collects a connection's request head. A plain WebSocket upgrade of either endpoint from an
/// allowed origin is answered with `101` and the connection becomes a `SocketWebSocketHandler`'s;
/// the `101` of a unidirectional upgrade with its connect request in the URL goes out with the
/// connect push instead (as `WebSocketHandshakeHandler` does on a NIO channel). A plain
/// `EventSource` request (`GET /connection/uni_sse?cf_connect=…` from an allowed origin) starts
/// its stream here, served by a `SocketStreamHandler`. Anything else (the HTTP routes, a `POST`ed
/// stream, a refused or unusual request) is handed, socket and bytes, to `handOff`, which serves it
/// on a NIO channel exactly as a connection accepted there.
///
/// A connection whose head has not ended within the handshake timeout is closed.
final class SocketHandshakeHandler: SocketConnectionHandler {
    /// What the connections of one loop share.
    struct Context: Sendable {
        let node: Node
        let batcher: FlushBatcher
        let deadlines: HandshakeDeadlines
        let allowsOrigin: @Sendable (_ origin: String?, _ host: String?) -> Bool
        /// Serves the socket (no longer the loop's) on a NIO channel, `bytes` as its first read.
        let handOff: @Sendable (_ socket: CInt, _ bytes: ByteBuffer) -> Void
    }

    private let context: Context
    private let deadline: HandshakeDeadline
    private var received: ByteBuffer?

    init(connection: SocketConnection, context: Context) {
        self.context = context
        self.deadline = context.deadlines.start(closing: connection)
    }

    func received(_ bytes: ByteBuffer, on connection: SocketConnection) {
        if received == nil {
            received = bytes
        } else {
            var bytes = bytes
            received!.writeBuffer(&bytes)
        }
        switch received!.withUnsafeReadableBytes({ WebSocketHandshake.read($0) }) {
        case .incomplete:
            return
        case .upgrade(let request) where context.allowsOrigin(request.origin, request.host):
            deadline.cancel()
            var rest = received.take()!
            rest.moveReaderIndex(forwardBy: request.headLength)
            upgrade(connection, request, rest: rest)
        case .eventStream(let request):
            deadline.cancel()
            guard let connect = request.plainConnectRequest(allowedBy: context.allowsOrigin) else {
                context.handOff(connection.handOff(), received.take()!)
                return
            }
            // Whatever follows the head is dropped: the stream's client has nothing more to say.
            received = nil
            UniStreamConnection.start(
                on: connection, node: context.node, batcher: context.batcher, origin: request.origin, connectRequest: connect,
                lastEventID: request.lastEventID)
        case .upgrade, .other:
            deadline.cancel()
            let bytes = received.take()!
            context.handOff(connection.handOff(), bytes)
        }
    }

    private func upgrade(_ connection: SocketConnection, _ request: WebSocketHandshake.Upgrade, rest: ByteBuffer) {
        let node = context.node
        let configuration = node.configuration
        let query = request.query.map { Substring($0) }
        let response = WebSocketHandshake.response(key: request.key)
        let sendsResponseLater = request.sendsResponseWithFirstFrame
        let transport = WebSocketTransport(
            owner: .connection(connection), socket: connection.socket, metrics: node.metrics, batcher: context.batcher,
            maxQueueSize: configuration.clientQueueMaxSize, unidirectional: request.endpoint == .unidirectional,
            unsentResponse: sendsResponseLater ? response : nil)
        if !sendsResponseLater {
            let written = connection.loop.makePromise(of: Void.self)
            connection.write(CollectionOfOne(ByteBuffer(bytes: response)), promise: written)
            // Whatever of it the socket did not take goes before any frame.
            transport.holdDirectWrites(until: written.futureResult)
        }
        let handler = SocketWebSocketHandler(
            node: node, transport: transport, connection: connection,
            connectRequest: GatewayListener.connectRequest(endpoint: request.endpoint, query: query))
        connection.handler = handler
        if rest.readableBytes > 0 { handler.received(rest, on: connection) }
    }

    func writabilityChanged(_ writable: Bool) {}

    func closed() {
        deadline.cancel()
    }
}
