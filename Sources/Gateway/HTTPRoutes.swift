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
        /// The methods the path takes (the `Allow` header of a 405).
        var allow: String?

        init(status: Int, contentType: String? = nil, body: String, allow: String? = nil) {
            self.status = status
            self.contentType = contentType
            self.body = body
            self.allow = allow
        }

        /// `{"error":{"code","message"}}`, the error shape of the streams' refusals too.
        static func error(_ status: Int, _ code: String, _ message: String, allow: String? = nil) -> Answer {
            Answer(
                status: status, contentType: "application/json",
                body: String(buffer: HTTPStreamTransport.errorBody(code: code, message: message)), allow: allow)
        }

        static let notFound = error(404, "not_found", "nothing is served at this path")
        static let onlyGET = error(405, "method_not_allowed", "this path takes GET", allow: "GET")
        static let ok = Answer(status: 200, contentType: "text/plain; charset=utf-8", body: "ok\n")
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
            case ("GET", "/healthz"): return .ok
            case (_, "/healthz"): return .onlyGET
            default: return .notFound
            }
        }
        switch (method, path) {
        case ("GET", "/healthz"):
            if let redis {
                do {
                    try await redis.ping()
                } catch {
                    return .error(503, "redis_unavailable", "redis does not answer")
                }
            }
            return .ok
        case ("GET", "/metrics"):
            let text = node.metrics.render(
                connections: node.hub.connectionCount, subscriptions: node.hub.subscriptionCount, channels: node.hub.channels().count)
            return Answer(status: 200, contentType: "text/plain; version=0.0.4", body: text)
        case ("POST", _) where path.hasPrefix("/api/"):
            guard
                HTTPAPI.isAuthorised(apiKey: configuration.apiKey, xAPIKey: header("X-API-Key"), authorization: header("Authorization"))
            else { return .error(401, "unauthorized", "an API key is required (X-API-Key, or Authorization: apikey <key>)") }
            let name = String(path.dropFirst("/api/".count))
            guard HTTPAPI.methods.contains(name) else { return .error(404, "unknown_method", "no such server API method") }
            let params: JSONValue
            if body.readableBytes == 0 {
                params = .object([:])
            } else if let value = JSONValue.parse(body.readableBytesView) {
                params = value
            } else {
                return .error(400, "invalid_json", "the body is not JSON")
            }
            let answer = await HTTPAPI(node: node).handle(method: name, body: params)
            return Answer(status: 200, contentType: "application/json", body: answer)
        case (_, "/healthz"), (_, "/metrics"):
            return .onlyGET
        case (_, _) where path.hasPrefix("/api/"):
            return .error(405, "method_not_allowed", "the server API takes POST", allow: "POST")
        default:
            return .notFound
        }
    }
}
