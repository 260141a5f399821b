/// The gateway's HTTP endpoints (`/api/<method>`, `/metrics`, `/healthz`), independent of the server that carries them.
import Foundation
import NIOCore
import RedisClient

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
