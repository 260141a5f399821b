/// The inbound side of an `EventSource` stream on the gateway's own event loop.
import NIOCore

/// Stays with a stream's `SocketConnection` once its request is read, as `UniStreamConnection`
/// does on a NIO channel: bytes the client sends are read and dropped (it has nothing more to
/// say); the socket's writability and its close are passed to the transport.
final class SocketStreamHandler: SocketConnectionHandler {
    private let transport: HTTPStreamTransport

    init(transport: HTTPStreamTransport) {
        self.transport = transport
    }

    func received(_ bytes: ByteBuffer, on connection: SocketConnection) {}

    func writabilityChanged(_ writable: Bool) {
        transport.writabilityChanged(writable)
    }

    func closed() {
        transport.socketClosed()
    }
}
