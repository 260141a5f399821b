/// The realtime gateway: a WebSocket server that speaks Centrifugo's client protocol v2 (JSON) at
/// `/connection/websocket` and its server HTTP API at `/api/<method>`, so the official SDKs and
/// `cent` work against it unchanged. Modelled on centrifuge: a `Node` owns the `Hub` of local
/// connections, a `Broker` (publications, history, control) and a `PresenceManager`, each in memory
/// for one process or in Redis so any number of gateway processes act as one. `Client` is the
/// per-connection protocol state machine; `WebSocketTransport` adapts it to Hummingbird's WebSockets.
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import RedisClient
import ServiceLifecycle
import Synchronization

public final class GatewayServer: Service {
    public let configuration: GatewayConfiguration
    let node: Node
    let logger: Logger
    private let redis: RedisClient?

    /// With a Redis client the Redis broker and presence are used; with nil, the in-memory engine.
    public init(configuration: GatewayConfiguration, redis: RedisClient?, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.redis = redis
        let broker: any Broker
        let presence: any PresenceManager
        if let redis {
            let prefix = configuration.redisPrefix ?? "gw:"
            broker = RedisBroker(redis: redis, prefix: prefix, logger: logger)
            presence = RedisPresenceManager(redis: redis, prefix: prefix)
        } else {
            broker = MemoryBroker()
            presence = MemoryPresenceManager()
        }
        node = Node(configuration: configuration, broker: broker, presence: presence, logger: logger)
    }

    /// Serves until graceful shutdown, then closes every client with 3001 before the listener stops.
    public func run() async throws {
        let app = buildApplication()
        let group = ServiceGroup(services: [app], logger: logger)
        let node = self.node
        try await withGracefulShutdownHandler {
            try await group.run()
        } onGracefulShutdown: {
            Task {
                await node.shutdown()
                try? await Task.sleep(for: .milliseconds(300))
                await group.triggerGracefulShutdown()
            }
        }
    }

    /// The Hummingbird application (HTTP routes plus the WebSocket upgrade). Tests run it on port 0.
    public func buildApplication(onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }) -> some ApplicationProtocol {
        let node = self.node
        let configuration = self.configuration
        let router = Router()
        let api = HTTPAPI(node: node)
        let redis = self.redis
        router.get("/healthz") { _, _ -> Response in
            if let redis {
                do {
                    try await redis.ping()
                } catch {
                    return Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: "redis unavailable\n")))
                }
            }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("/metrics") { _, _ -> Response in
            let text = node.metrics.render(
                connections: node.hub.connectionCount, subscriptions: node.hub.subscriptionCount, channels: node.hub.channels().count)
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        router.post("/api/{method}") { request, context -> Response in
            guard
                HTTPAPI.isAuthorised(
                    apiKey: configuration.apiKey, xAPIKey: request.headers[HTTPField.Name("X-API-Key")!],
                    authorization: request.headers[.authorization])
            else { return Response(status: .unauthorized) }
            let method = context.parameters.get("method") ?? ""
            guard HTTPAPI.methods.contains(method) else { return Response(status: .notFound) }
            var request = request
            let body = try await request.collectBody(upTo: 16 * 1024 * 1024)
            let params: JSONValue
            if body.readableBytes == 0 {
                params = .object([:])
            } else if let value = JSONValue.parse(body.readableBytesView) {
                params = value
            } else {
                return Response(status: .badRequest)
            }
            let answer = await api.handle(method: method, body: params)
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: answer)))
        }

        let webSocketConfiguration = WebSocketServerConfiguration(
            maxFrameSize: max(configuration.maxMessageSize, 1024), autoPing: .disabled, closeTimeout: .seconds(2))
        let logger = self.logger
        var app = Application(
            router: router,
            server: .http1WebSocketUpgrade(configuration: .init(ws: webSocketConfiguration)) { request, channel, _ in
                guard request.path?.split(separator: "?").first == "/connection/websocket" else { return .dontUpgrade }
                guard OriginCheck.allows(origin: request.headerFields[.origin], host: request.authority ?? request.headerFields[HTTPField.Name("Host")!], allowed: configuration.allowedOrigins) else {
                    logger.debug("origin refused", metadata: ["origin": "\(request.headerFields[.origin] ?? "")"])
                    return .dontUpgrade
                }
                let queueLimit = configuration.clientQueueMaxSize
                _ = channel.setOption(
                    NIOCore.ChannelOptions.writeBufferWaterMark,
                    value: .init(low: queueLimit / 2, high: queueLimit))
                return .upgrade([:]) { inbound, outbound, _ in
                    let transport = WebSocketTransport(channel: channel, outbound: outbound, maxQueueSize: queueLimit)
                    let client = node.makeClient(transport: transport)
                    transport.attach(client)
                    node.metrics.connectionsAccepted.add(1, ordering: .relaxed)
                    do {
                        for try await message in inbound.messages(maxSize: configuration.maxMessageSize) {
                            switch message {
                            case .text(let text): await client.handle(ByteBuffer(string: text))
                            case .binary(let buffer): await client.handle(buffer)
                            }
                            if client.isClosed { break }
                        }
                    } catch {
                        if !client.isClosed { client.disconnect(.messageTooLarge) }
                    }
                    await transport.closed()
                    await client.transportClosed()
                    transport.detach()
                }
            },
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
            services: [NodeTimers(node: node)],
            onServerRunning: onServerRunning,
            logger: logger
        )
        app.beforeServerStarts {
            try await node.start()
        }
        return app
    }
}

/// Runs the node's once-a-second timers (pings, expiry, presence refresh) inside the application.
struct NodeTimers: Service {
    let node: Node

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await node.runTimers()
        }
    }
}

/// The Origin check on the WebSocket upgrade.
enum OriginCheck {
    static func allows(origin: String?, host: String?, allowed: [String]) -> Bool {
        guard let origin, !origin.isEmpty else { return true }  // not a browser
        let normalized = origin.lowercased()
        if allowed.isEmpty {
            // Same host only (ports aside: non-browser clients often send an Origin without one).
            guard let host = host?.lowercased(), let schemeEnd = normalized.range(of: "://") else { return false }
            return hostname(String(normalized[schemeEnd.upperBound...])) == hostname(host)
        }
        for pattern in allowed {
            let pattern = pattern.lowercased()
            if pattern == "*" || pattern == normalized { return true }
            if pattern.contains("*"), HTTPAPI.glob(pattern, matches: normalized) { return true }
        }
        return false
    }

    private static func hostname(_ authority: String) -> Substring {
        let host = authority.split(separator: "/").first ?? ""
        if host.hasPrefix("[") { return host.split(separator: "]").first ?? host }
        return host.split(separator: ":").first ?? host
    }
}

extension GatewayServer {
    /// Clients connected to this process (for tests and the load tool).
    public var connectionCount: Int { node.hub.connectionCount }
}
