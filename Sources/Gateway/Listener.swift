/// The gateway's listening sockets: the public port's accept loop and pipeline (the WebSocket
/// handshake, HTTP/1 for the rest) and the internal port's NIO server bootstrap.
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// The gateway's public socket: HTTP/1 on one port, where `GET /connection/websocket` (and the
/// unidirectional `/connection/uni_websocket`) upgrades to a WebSocket served by
/// `WebSocketHandler`; the unidirectional HTTP streams go to `UniStreamHandler` and every other
/// request to `HTTPRoutes` (public exposure: a bare `/healthz`). `bindInternal` serves the
/// internal routes on their own socket, without WebSockets. Everything per connection is a
/// channel handler; nothing waits in a task while a client idles.
struct GatewayListener: Sendable {
    let node: Node
    let routes: HTTPRoutes
    let logger: Logger
    let group: any EventLoopGroup

    init(node: Node, routes: HTTPRoutes, logger: Logger, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.node = node
        self.routes = routes
        self.logger = logger
        self.group = group
    }

    /// Listens on the public port. Connections are accepted by an `Acceptor` (so each WebSocket's
    /// transport knows its socket) and served by NIO channels on the group's event loops, or with
    /// `socket_layer: own` on event loops of the gateway's own (`bindOwn`).
    func bind(host: String, port: Int) throws -> Acceptor {
        if node.configuration.socketLayer == .own { return try bindOwn(host: host, port: port) }
        let serve = serveOnNIO()
        let acceptor = try Acceptor(host: host, port: port, backlog: 4096, eventLoop: group.next())
        acceptor.start(logger: logger) { socket in serve(socket, nil) }
        return acceptor
    }

    /// Serves an accepted socket on a NIO channel of the group's loops, `firstRead` (bytes read
    /// from it before) as the channel's first read. NIO owns the descriptor from then on (on
    /// failure it has already closed it).
    private func serveOnNIO() -> @Sendable (_ socket: CInt, _ firstRead: ByteBuffer?) -> Void {
        let perLoop = makePerLoop()
        let node = self.node
        let routes = self.routes
        let logger = self.logger
        let group = self.group
        let waterMarks = Self.waterMarks(node)
        return { socket, firstRead in
            // ClientBootstrap sets TCP_NODELAY itself. Other options are set in the initializer:
            // the bootstrap applies its options through a chain of futures, which cost a new
            // connection more than the system call.
            let bootstrap = ClientBootstrap(group: group)
                .channelInitializer { channel in
                    do {
                        try channel.syncOptions?.setOption(.writeBufferWaterMark, value: .init(low: waterMarks.low, high: waterMarks.high))
                        if let firstRead { try channel.pipeline.syncOperations.addHandler(FirstRead(firstRead)) }
                    } catch {
                        return channel.eventLoop.makeFailedFuture(error)
                    }
                    return Self.configure(channel, socket: socket, node: node, routes: routes, logger: logger, loop: perLoop(channel.eventLoop))
                }
            _ = bootstrap.withConnectedSocket(socket)
        }
    }

    /// Bytes waiting for a connection's socket above which it is not writable (3008 at the next
    /// flush), and below which it is again: `client_queue_max_size` and half of it.
    private static func waterMarks(_ node: Node) -> (low: Int, high: Int) {
        let size = node.configuration.clientQueueMaxSize
        return (size / 2, max(size, 1))
    }

    /// The public port on `SocketLoop`s of the gateway's own, one per core: each accepts
    /// connections itself and answers WebSocket upgrades (`SocketHandshakeHandler`); other
    /// requests are handed, socket and bytes read, to a NIO channel on the group's loops and
    /// served as `bind` serves them. The acceptor stops the loops (`Acceptor.stopLoops`).
    private func bindOwn(host: String, port: Int) throws -> Acceptor {
        let configuration = node.configuration
        let handshakeTimeout = self.handshakeTimeout
        var loops: [SocketLoop] = []
        do {
            for index in 0..<max(System.coreCount, 1) {
                loops.append(try SocketLoop(name: "gateway-loop-\(index)", logger: logger))
            }
        } catch {
            for loop in loops { loop.stop() }
            throw error
        }
        let acceptor: Acceptor
        do {
            acceptor = try Acceptor(host: host, port: port, backlog: 4096, eventLoop: group.next())
        } catch {
            for loop in loops { loop.stop() }
            throw error
        }
        let node = self.node
        let allowedOrigins = configuration.allowedOrigins
        let serve = serveOnNIO()
        let waterMarks = Self.waterMarks(node)
        let contexts = Dictionary(
            uniqueKeysWithValues: loops.map { loop in
                (
                    ObjectIdentifier(loop),
                    SocketHandshakeHandler.Context(
                        node: node,
                        batcher: FlushBatcher(eventLoop: loop, ioUring: configuration.fanoutIOUring, metrics: node.metrics),
                        deadlines: HandshakeDeadlines(eventLoop: loop, timeout: handshakeTimeout),
                        allowsOrigin: { origin, host in OriginCheck.allows(origin: origin, host: host, allowed: allowedOrigins) },
                        handOff: { socket, bytes in serve(socket, bytes) })
                )
            })
        acceptor.start(on: loops) { connection in
            connection.setWaterMarks(low: waterMarks.low, high: waterMarks.high)
            connection.handler = SocketHandshakeHandler(connection: connection, context: contexts[ObjectIdentifier(connection.loop)]!)
        }
        return acceptor
    }

    /// What the connections of one event loop share.
    private struct PerLoop: Sendable {
        let batcher: FlushBatcher
        let deadlines: HandshakeDeadlines
    }

    private var handshakeTimeout: TimeAmount { .seconds(Int64(max(node.configuration.handshakeTimeout, 1))) }

    /// The `PerLoop` of each of the group's event loops, made once (one made on the spot for a
    /// loop outside the group).
    private func makePerLoop() -> @Sendable (any EventLoop) -> PerLoop {
        let node = self.node
        let timeout = handshakeTimeout
        let make = { @Sendable (eventLoop: any EventLoop) in
            PerLoop(
                batcher: FlushBatcher(eventLoop: eventLoop, ioUring: node.configuration.fanoutIOUring, metrics: node.metrics),
                deadlines: HandshakeDeadlines(eventLoop: eventLoop, timeout: timeout))
        }
        var loops: [ObjectIdentifier: PerLoop] = [:]
        for eventLoop in group.makeIterator() { loops[ObjectIdentifier(eventLoop)] = make(eventLoop) }
        let made = loops
        return { eventLoop in made[ObjectIdentifier(eventLoop)] ?? make(eventLoop) }
    }

    /// One public connection's pipeline: `WebSocketHandshakeHandler`, which answers a plain
    /// upgrade of either endpoint itself, starts a plain `EventSource` stream itself, and hands
    /// anything else to `httpPipeline`.
    private static func configure(
        _ channel: any Channel, socket: CInt, node: Node, routes: HTTPRoutes, logger: Logger, loop: PerLoop
    ) -> EventLoopFuture<Void> {
        let allowedOrigins = node.configuration.allowedOrigins
        let batcher = loop.batcher
        let handshake = WebSocketHandshakeHandler(
            socket: socket, deadlines: loop.deadlines,
            allowsOrigin: { origin, host in OriginCheck.allows(origin: origin, host: host, allowed: allowedOrigins) },
            upgrade: { context, request, unsentResponse in
                try addWebSocketHandler(
                    to: context.channel, socket: socket, node: node, batcher: batcher, endpoint: request.endpoint,
                    query: request.query.map { Substring($0) }, unsentResponse: unsentResponse)
            },
            eventStream: { context, request, connectRequest in
                try UniStreamConnection.start(
                    on: context.channel, socket: socket, node: node, batcher: batcher, framing: .eventStream, chunked: true,
                    origin: request.origin, connectRequest: connectRequest, lastEventID: request.lastEventID)
            },
            fallback: { context, headDeadline in
                try httpPipeline(
                    context.channel, socket: socket, node: node, routes: routes, logger: logger, batcher: batcher, headDeadline: headDeadline)
            })
        return channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handshake) }
    }

    static func maxFrameSize(_ node: Node) -> Int { max(node.configuration.maxMessageSize, 1024) }

    /// A unidirectional connection's connect request from its URL's `cf_connect` (one that cannot
    /// be decoded is a bad request, answered by a disconnect); nil for anything else.
    static func connectRequest(endpoint: WebSocketHandshake.Endpoint, query: Substring?) -> ByteBuffer? {
        guard endpoint == .unidirectional, let query else { return nil }
        do {
            return try UniWebSocket.connectRequest(query: query)
        } catch {
            return ByteBuffer(string: "?")
        }
    }

    /// The connection's own handler, which reads and writes frames itself: the client and its
    /// transport. A unidirectional connection whose `query` has `cf_connect` connects with it at
    /// once (one that cannot be decoded is a bad request, answered by a disconnect). `unsentResponse`: the
    /// `101` the transport is to send in front of its first frame.
    private static func addWebSocketHandler(
        to channel: any Channel, socket: CInt, node: Node, batcher: FlushBatcher, endpoint: WebSocketHandshake.Endpoint,
        query: Substring?, unsentResponse: [UInt8]? = nil
    ) throws {
        let configuration = node.configuration
        let unidirectional = endpoint == .unidirectional
        let connectRequest = connectRequest(endpoint: endpoint, query: query)
        let transport = WebSocketTransport(
            channel: channel, socket: socket, metrics: node.metrics, batcher: batcher, maxQueueSize: configuration.clientQueueMaxSize,
            unidirectional: unidirectional, unsentResponse: unsentResponse)
        let handler = WebSocketHandler(
            node: node, transport: transport, maxMessageSize: configuration.maxMessageSize, maxFrameSize: maxFrameSize(node),
            connectRequest: connectRequest)
        try channel.pipeline.syncOperations.addHandler(handler)
    }

    /// HTTP/1 with NIO's WebSocket upgrader, for whatever is not a plain upgrade: the
    /// unidirectional HTTP streams (`UniStreamHandler`), the routes (`/healthz`), and upgrades the
    /// upgrader refuses or takes differently than the handshake handler.
    /// `headDeadline`: the handshake timeout of a head not read whole yet, cancelled once it is.
    private static func httpPipeline(
        _ channel: any Channel, socket: CInt, node: Node, routes: HTTPRoutes, logger: Logger, batcher: FlushBatcher,
        headDeadline: HandshakeDeadline?
    ) throws {
        let configuration = node.configuration
        let upgrader = NIOWebSocketServerUpgrader(
            maxFrameSize: maxFrameSize(node),
            automaticErrorHandling: false,
            shouldUpgrade: { channel, head in
                guard WebSocketHandshake.endpoint(target: head.uri[...]) != nil else { return channel.eventLoop.makeSucceededFuture(nil) }
                guard
                    OriginCheck.allows(
                        origin: head.headers.first(name: "Origin"), host: head.headers.first(name: "Host"),
                        allowed: configuration.allowedOrigins)
                else {
                    logger.debug("origin refused", metadata: ["origin": "\(head.headers.first(name: "Origin") ?? "")"])
                    return channel.eventLoop.makeSucceededFuture(nil)
                }
                return channel.eventLoop.makeSucceededFuture(HTTPHeaders())
            },
            upgradePipelineHandler: { channel, head in
                channel.eventLoop.makeCompletedFuture {
                    // The upgrader has added NIO's frame codec; `WebSocketHandler` reads bytes.
                    try channel.pipeline.syncOperations.addHandler(DecodedFrameBytes())
                    let (endpoint, query) = WebSocketHandshake.endpoint(target: head.uri[...]) ?? (.bidirectional, nil)
                    try addWebSocketHandler(to: channel, socket: socket, node: node, batcher: batcher, endpoint: endpoint, query: query)
                }
            })
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
            withServerUpgrade: (upgraders: [upgrader], completionHandler: { context in
                context.pipeline.removeHandler(name: HTTPProtocolErrorHandler.name, promise: nil)
                context.pipeline.removeHandler(name: UniStreamHandler.name, promise: nil)
                context.pipeline.removeHandler(name: HTTPRequestHandler.name, promise: nil)
            }),
            withErrorHandling: false)
        try channel.pipeline.syncOperations.addHandler(HTTPProtocolErrorHandler(), name: HTTPProtocolErrorHandler.name)
        try channel.pipeline.syncOperations.addHandler(
            UniStreamHandler(node: node, socket: socket, batcher: batcher, headDeadline: headDeadline), name: UniStreamHandler.name)
        try channel.pipeline.syncOperations.addHandler(HTTPRequestHandler(routes: routes), name: HTTPRequestHandler.name)
    }

    /// The internal listener: plain HTTP/1 answered by `internalRoutes` (server API, metrics, health).
    func bindInternal(host: String, port: Int, routes internalRoutes: HTTPRoutes) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: false)
                    try channel.pipeline.syncOperations.addHandler(HTTPProtocolErrorHandler())
                    try channel.pipeline.syncOperations.addHandler(HTTPRequestHandler(routes: internalRoutes), name: HTTPRequestHandler.name)
                }
            }
            .bind(host: host, port: port)
            .get()
    }
}

/// The bytes the gateway's own loop read from a connection before handing it to NIO, passed on as
/// the channel's first read once it is active; then the handler leaves.
private final class FirstRead: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private var bytes: ByteBuffer?

    init(_ bytes: ByteBuffer) {
        self.bytes = bytes
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        if let bytes = bytes.take() {
            context.fireChannelRead(wrapInboundOut(bytes))
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}

/// For an upgrade NIO's upgrader answered (the HTTP pipeline's path), whose pipeline holds NIO's
/// frame decoder: each decoded frame is handed on as the bytes of an unmasked frame, so
/// `WebSocketHandler` reads it as it reads any other. (The decoder cannot simply be taken out: it
/// leaves the pipeline a tick later, after decoding what arrived meanwhile.)
private final class DecodedFrameBytes: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let bytes = WebSocketFraming.frame(frame.unmaskedData, opcode: UInt8(webSocketOpcode: frame.opcode), fin: frame.fin)
        context.fireChannelRead(wrapInboundOut(bytes))
    }
}
