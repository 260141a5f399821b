/// A unidirectional HTTP stream once its request is read: the client on an `HTTPStreamTransport`,
/// and the channel handler that stays with the connection until it closes (`SocketStreamHandler`
/// on the gateway's own event loop).
import Logging
import NIOCore
import Synchronization

/// The last handler of a streaming connection, and how a stream starts. Whichever handler read the
/// request (the handshake handler for a plain `EventSource` `GET`, `UniStreamHandler` for the
/// rest) calls `start` and leaves; from then on the pipeline holds this handler alone, and the
/// transport writes the response's bytes. Bytes the client sends are read and dropped (it has
/// nothing more to say); the socket's closing and writability are passed to the transport.
final class UniStreamConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let transport: HTTPStreamTransport

    private init(transport: HTTPStreamTransport) {
        self.transport = transport
    }

    /// Makes the stream's client and transport, puts this handler in `channel`'s pipeline and runs
    /// `connectRequest` (the client's connect, from its URL or its request body); on the event loop.
    /// `lastEventID`: an `EventSource` reconnecting says where it was (`EventStreamID`), and its
    /// channels recover from there unless the connect request names positions of its own.
    static func start(
        on channel: any Channel, socket: CInt?, node: Node, batcher: FlushBatcher, framing: HTTPStreamTransport.Framing,
        chunked: Bool, origin: String?, connectRequest: ByteBuffer, lastEventID: String?
    ) throws {
        let stream = Stream(
            owner: .channel(channel), socket: socket, node: node, batcher: batcher, framing: framing, chunked: chunked,
            origin: origin, lastEventID: lastEventID)
        try channel.pipeline.syncOperations.addHandler(UniStreamConnection(transport: stream.transport))
        stream.run(connectRequest, node: node)
    }

    /// The same on a connection of the gateway's own event loop (a plain `EventSource` request,
    /// read by `SocketHandshakeHandler`), which `SocketStreamHandler` then serves; on its loop.
    static func start(
        on connection: SocketConnection, node: Node, batcher: FlushBatcher, origin: String?, connectRequest: ByteBuffer,
        lastEventID: String?
    ) {
        let stream = Stream(
            owner: .connection(connection), socket: connection.socket, node: node, batcher: batcher, framing: .eventStream,
            chunked: true, origin: origin, lastEventID: lastEventID)
        connection.handler = SocketStreamHandler(transport: stream.transport)
        stream.transport.channelOpened(active: connection.isOpen)
        stream.run(connectRequest, node: node)
    }

    /// A stream's client on its transport, and where its channels recover from.
    private struct Stream {
        let client: Client
        let transport: HTTPStreamTransport
        let positions: [String: EventStreamID.Position]
        let eventLoop: any EventLoop

        init(
            owner: SocketOwner, socket: CInt?, node: Node, batcher: FlushBatcher, framing: HTTPStreamTransport.Framing,
            chunked: Bool, origin: String?, lastEventID: String?
        ) {
            var positions: [String: EventStreamID.Position] = [:]
            if let lastEventID, framing == .eventStream {
                positions = EventStreamID.decode(Substring(lastEventID)) ?? [:]
                if positions.isEmpty { node.logger.debug("Last-Event-ID not ours, ignored", metadata: ["value": "\(lastEventID.prefix(100))"]) }
            }
            transport = HTTPStreamTransport(
                owner: owner, socket: socket, metrics: node.metrics, batcher: batcher, framing: framing, chunked: chunked,
                maxQueueSize: node.configuration.clientQueueMaxSize,
                head: HTTPStreamTransport.responseHead(framing: framing, chunked: chunked, origin: origin))
            client = node.makeClient(transport: transport)
            transport.attach(client)
            self.positions = positions
            eventLoop = owner.eventLoop
        }

        /// Counts the connection and runs its connect request, preferring its event loop.
        func run(_ connectRequest: ByteBuffer, node: Node) {
            node.metrics.connectionsAccepted.add(1, ordering: .relaxed)
            Task(executorPreference: EventLoopTaskExecutor(eventLoop)) { [client, positions] in
                await client.handle(connectRequest, recovering: positions)
            }
        }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        transport.channelOpened(active: context.channel.isActive)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        transport.writabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        transport.socketClosed()
        context.fireChannelInactive()
    }
}
