/// The realtime gateway: a WebSocket server that speaks Centrifugo's client protocol v2 (JSON) at
/// `/connection/websocket` and its server HTTP API at `/api/<method>` (on an internal listener), so the official SDKs and
/// `cent` work against it unchanged. Modelled on centrifuge: a `Node` owns the `Hub` of local
/// connections, a `Broker` (publications, history, control) and a `PresenceManager`, each in memory
/// for one process or in Redis so any number of gateway processes act as one. `Client` is one
/// connection (its protocol state machine is the value type `ConnectionState`); `GatewayListener`
/// serves WebSockets and HTTP from NIO channel handlers (no task or actor per connection). This
/// file owns `GatewayServer`, the service that assembles and runs all of it.
import Foundation
import Logging
import NIOCore
import RedisClient
import ServiceLifecycle

public final class GatewayServer: Service {
    public let configuration: GatewayConfiguration
    let node: Node
    let logger: Logger
    private let redis: RedisClient?
    private let onListening: @Sendable (ListeningPorts) async -> Void

    /// The ports the gateway listens on once bound (useful with port 0).
    public struct ListeningPorts: Sendable {
        /// The WebSocket port (and bare `/healthz`).
        public var port: Int
        /// The internal listener: server HTTP API, `/metrics`, `/healthz` with its Redis check.
        public var internalPort: Int
    }

    /// With a Redis client the Redis broker and presence are used; with nil, the in-memory engine.
    /// `onListening` gets the bound ports once both listeners are up.
    public init(
        configuration: GatewayConfiguration, redis: RedisClient?, logger: Logger,
        onListening: @escaping @Sendable (ListeningPorts) async -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.logger = logger
        self.redis = redis
        self.onListening = onListening
        let broker: any Broker
        let presence: any PresenceManager
        let directory: any NodeDirectory
        if let redis {
            let prefix = configuration.redisPrefix ?? "gw:"
            broker = RedisBroker(redis: redis, prefix: prefix, logger: logger)
            presence = RedisPresenceManager(redis: redis, prefix: prefix)
            directory = RedisNodeDirectory(redis: redis, prefix: prefix)
        } else {
            broker = MemoryBroker()
            presence = MemoryPresenceManager()
            directory = LocalNodeDirectory()
        }
        node = Node(configuration: configuration, broker: broker, presence: presence, directory: directory, logger: logger)
    }

    /// Serves until graceful shutdown. Then the listener closes first, so no client reconnects to
    /// this process while it stops, and every client is closed with 3001 (the SDKs reconnect
    /// elsewhere, or to this node's successor on the same address).
    public func run() async throws {
        let node = self.node
        try await node.start()
        let listener = GatewayListener(node: node, routes: routes, logger: logger)
        let internalChannel = try await listener.bindInternal(
            host: configuration.internalHost, port: configuration.internalPort, routes: internalRoutes)
        let acceptor: Acceptor
        do {
            acceptor = try listener.bind(host: configuration.host, port: configuration.port)
        } catch {
            try? await internalChannel.close()
            throw error
        }
        logger.info(
            "gateway listening",
            metadata: [
                "address": "\(acceptor.localAddress)",
                "internal_address": "\(internalChannel.localAddress.map { "\($0)" } ?? "?")",
            ])
        await onListening(
            ListeningPorts(
                port: acceptor.localAddress.port ?? configuration.port,
                internalPort: internalChannel.localAddress?.port ?? configuration.internalPort))
        let timers = Task { await node.runTimers() }
        defer { timers.cancel() }
        try await withGracefulShutdownHandler {
            try await acceptor.closeFuture.get()
        } onGracefulShutdown: {
            node.beginStopping()
            acceptor.close()
        }
        await node.shutdown()
        // The 3001 close frames reach the clients before the process exits.
        try? await Task.sleep(for: .milliseconds(300))
        // The public port's own event loops, if it has them, close what is left.
        await acceptor.stopLoops()
        // The internal listener (metrics, health) answers until the very end.
        try? await internalChannel.close()
    }

    /// The public port's HTTP routes: a bare `/healthz`, 404 for everything else.
    var routes: HTTPRoutes {
        HTTPRoutes(node: node, configuration: configuration, redis: redis, exposure: .public)
    }

    /// The internal listener's routes: server API, metrics, health with its Redis check.
    var internalRoutes: HTTPRoutes {
        HTTPRoutes(node: node, configuration: configuration, redis: redis, exposure: .internal)
    }

}

extension GatewayServer {
    /// Clients connected to this process (for tests and the load tool).
    public var connectionCount: Int { node.hub.connectionCount }
}
