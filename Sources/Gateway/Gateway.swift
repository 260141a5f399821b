/// The realtime gateway: a WebSocket server that speaks Centrifugo's client protocol v2 (JSON) at
/// `/connection/websocket` and its server HTTP API at `/api/<method>`, so the official SDKs and
/// `cent` work against it unchanged. Modelled on centrifuge: a `Node` owns the `Hub` of local
/// connections, a `Broker` (publications, history, control) and a `PresenceManager`, each in memory
/// for one process or in Redis so any number of gateway processes act as one. `Client` is the
/// per-connection protocol state machine; `GatewayListener` serves WebSockets and HTTP from NIO
/// channel handlers (no task or actor per connection).
import Foundation
import HTTPTypes
import Hummingbird
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

    /// Serves until graceful shutdown, then closes every client with 3001 before the listener stops.
    public func run() async throws {
        let node = self.node
        try await node.start()
        let listener = GatewayListener(node: node, routes: routes, logger: logger)
        let channel = try await listener.bind(host: configuration.host, port: configuration.port)
        logger.info("gateway listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        let timers = Task { await node.runTimers() }
        defer { timers.cancel() }
        try await withGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onGracefulShutdown: {
            Task {
                await node.shutdown()
                try? await Task.sleep(for: .milliseconds(300))
                try? await channel.close()
            }
        }
    }

    /// The HTTP routes (server API, metrics, health), shared by the listener and `buildApplication`.
    var routes: HTTPRoutes {
        HTTPRoutes(node: node, configuration: configuration, redis: redis)
    }

    /// The HTTP routes as a Hummingbird application (no WebSocket endpoint): lets tests drive the
    /// server API without a socket. The gateway itself serves through `GatewayListener`.
    public func buildApplication() -> some ApplicationProtocol {
        let routes = self.routes
        let router = Router()
        @Sendable func respond(_ request: Request, path: String) async throws -> Response {
            var request = request
            let body = try await request.collectBody(upTo: HTTPRoutes.maxBodySize)
            let answer = await routes.respond(
                method: request.method.rawValue, path: path, header: { request.headers[HTTPField.Name($0)!] }, body: body)
            var headers = HTTPFields()
            if let contentType = answer.contentType { headers[.contentType] = contentType }
            return Response(
                status: .init(code: answer.status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: answer.body)))
        }
        router.get("/healthz") { request, _ in try await respond(request, path: "/healthz") }
        router.get("/metrics") { request, _ in try await respond(request, path: "/metrics") }
        router.post("/api/{method}") { request, context in
            try await respond(request, path: "/api/" + (context.parameters.get("method") ?? ""))
        }
        return Application(router: router, configuration: .init(address: .hostname(configuration.host, port: configuration.port)), logger: logger)
    }
}

/// The gateway's HTTP endpoints, independent of the server that carries them.
struct HTTPRoutes: Sendable {
    struct Answer: Sendable {
        var status: Int
        var contentType: String?
        var body: String
    }

    static let maxBodySize = 16 * 1024 * 1024

    let node: Node
    let configuration: GatewayConfiguration
    let redis: RedisClient?

    func respond(method: String, path: String, header: (String) -> String?, body: ByteBuffer) async -> Answer {
        switch (method, path) {
        case ("GET", "/healthz"):
            if let redis {
                do {
                    try await redis.ping()
                } catch {
                    return Answer(status: 503, body: "redis unavailable\n")
                }
            }
            return Answer(status: 200, body: "ok\n")
        case ("GET", "/metrics"):
            let text = node.metrics.render(
                connections: node.hub.connectionCount, subscriptions: node.hub.subscriptionCount, channels: node.hub.channels().count)
            return Answer(status: 200, contentType: "text/plain; version=0.0.4", body: text)
        case ("POST", _) where path.hasPrefix("/api/"):
            guard
                HTTPAPI.isAuthorised(apiKey: configuration.apiKey, xAPIKey: header("X-API-Key"), authorization: header("Authorization"))
            else { return Answer(status: 401, body: "") }
            let name = String(path.dropFirst("/api/".count))
            guard HTTPAPI.methods.contains(name) else { return Answer(status: 404, body: "") }
            let params: JSONValue
            if body.readableBytes == 0 {
                params = .object([:])
            } else if let value = JSONValue.parse(body.readableBytesView) {
                params = value
            } else {
                return Answer(status: 400, body: "")
            }
            let answer = await HTTPAPI(node: node).handle(method: name, body: params)
            return Answer(status: 200, contentType: "application/json", body: answer)
        case (_, "/healthz"), (_, "/metrics"), (_, _) where path.hasPrefix("/api/"):
            return Answer(status: 405, body: "")
        default:
            return Answer(status: 404, body: "")
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
