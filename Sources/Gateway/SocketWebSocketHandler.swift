/// The inbound side of one WebSocket connection on the gateway's own event loop.
import NIOCore

/// Drives a connection's `WebSocketInbound` from its `SocketConnection`: bytes as they are read,
/// reading paused while the client's inbox is full and resumed once it is worked off, the
/// transport told of the socket's writability and of its close.
final class SocketWebSocketHandler: SocketConnectionHandler {
    private let inbound: WebSocketInbound

    /// `connectRequest`: a unidirectional connection's connect request from its URL.
    init(node: Node, transport: WebSocketTransport, connection: SocketConnection, connectRequest: ByteBuffer?) {
        let configuration = node.configuration
        inbound = WebSocketInbound(
            node: node, transport: transport, maxMessageSize: configuration.maxMessageSize,
            maxFrameSize: GatewayListener.maxFrameSize(node))
        transport.setRawWriter(connection)
        let loop = connection.loop
        inbound.start(on: loop, connectRequest: connectRequest) {
            loop.execute { connection.resumeReading() }
        }
    }

    func received(_ bytes: ByteBuffer, on connection: SocketConnection) {
        inbound.read(bytes) { connection.close() }
        if inbound.inbox.isFull { connection.pauseReading() }
    }

    func writabilityChanged(_ writable: Bool) {
        inbound.transport.writabilityChanged(writable)
    }

    func closed() {
        inbound.closed()
    }
}
