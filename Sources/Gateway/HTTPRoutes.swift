/// The gateway's HTTP endpoints, independent of the server that carries them: on the public port only
/// a bare `/healthz`; on the internal listener `/api/<method>`, `/metrics` and `/healthz` with its Redis check.
import Foundation
import NIOCore
import RedisClient
import SwitchboardCore

/// The gateway's HTTP endpoints, independent of the server that carries them.
struct HTTPRoutes: Sendable {
    struct Answer: Sendable {
        var status: Int
        var contentType: String?
        var body: String
    }

    /// Which listener the routes answer on.
    enum Exposure: Sendable {
        /// The WebSocket port: a bare liveness check and nothing else (404 for `/api/*` and `/metrics`).
        case `public`
        /// The internal listener: the server API, metrics and health with its Redis check.
        case `internal`
    }

    static let maxBodySize = 16 * 1024 * 1024

    let node: Node
    let configuration: GatewayConfiguration
    let redis: RedisClient?
    var exposure: Exposure = .internal

    func respond(method: String, path: String, header: (String) -> String?, body: ByteBuffer) async -> Answer {
        if exposure == .public {
            switch (method, path) {
            case ("GET", "/healthz"): return Answer(status: 200, body: "ok\n")
            case (_, "/healthz"): return Answer(status: 405, body: "")
            default: return Answer(status: 404, body: "")
            }
        }
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
        case (_, "/healthz"), (_, "/metrics"),
            (_, _) where path.hasPrefix("/api/"):
            return Answer(status: 405, body: "")
        default:
            return Answer(status: 404, body: "")
        }
    }
}
