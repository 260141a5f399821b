/// The gateway's listening socket: the NIO server bootstrap, the HTTP/1 pipeline and the WebSocket upgrade.
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// The gateway's public socket: HTTP/1 on one port, where `GET /connection/websocket` upgrades to a
/// WebSocket served by `WebSocketHandler` and every other request goes to `HTTPRoutes` (public
/// exposure: a bare `/healthz`). `bindInternal` serves the internal routes on their own socket,
/// without WebSockets. Everything per connection is a channel handler; nothing waits in a task while a client idles.
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

    func bind(host: String, port: Int) async throws -> any Channel {
        var batchers: [ObjectIdentifier: FlushBatcher] = [:]
        for eventLoop in group.makeIterator() {
            batchers[ObjectIdentifier(eventLoop)] = FlushBatcher(eventLoop: eventLoop)
        }
        let batchersByLoop = batchers
        let node = self.node
        let routes = self.routes
        let logger = self.logger
        let configuration = node.configuration
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(
                .writeBufferWaterMark,
                value: .init(low: configuration.clientQueueMaxSize / 2, high: max(configuration.clientQueueMaxSize, 1)))
            .childChannelInitializer { channel in
                let batcher = batchersByLoop[ObjectIdentifier(channel.eventLoop)] ?? FlushBatcher(eventLoop: channel.eventLoop)
                let http = HTTPRequestHandler(routes: routes)
                let upgrader = NIOWebSocketServerUpgrader(
                    maxFrameSize: max(configuration.maxMessageSize, 1024),
                    automaticErrorHandling: false,
                    shouldUpgrade: { channel, head in
                        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
                        guard path == "/connection/websocket" else { return channel.eventLoop.makeSucceededFuture(nil) }
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
                    upgradePipelineHandler: { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            let transport = WebSocketTransport(
                                channel: channel, batcher: batcher, maxQueueSize: configuration.clientQueueMaxSize)
                            let handler = WebSocketHandler(
                                node: node, transport: transport, maxMessageSize: configuration.maxMessageSize)
                            try channel.pipeline.syncOperations.addHandler(handler)
                        }
                    })
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withServerUpgrade: (upgraders: [upgrader], completionHandler: { context in
                            context.pipeline.removeHandler(name: HTTPRequestHandler.name, promise: nil)
                        }))
                    try channel.pipeline.syncOperations.addHandler(http, name: HTTPRequestHandler.name)
                }
            }
            .bind(host: host, port: port)
            .get()
    }

    /// The internal listener: plain HTTP/1 answered by `internalRoutes` (server API, metrics, health).
    func bindInternal(host: String, port: Int, routes internalRoutes: HTTPRoutes) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(HTTPRequestHandler(routes: internalRoutes), name: HTTPRequestHandler.name)
                }
            }
            .bind(host: host, port: port)
            .get()
    }
}
