import Foundation
import SwitchboardCore
import TestSupport
import Testing

@testable import Gateway

/// The gateway's two listeners on real sockets: the public port serves the WebSocket and a bare
/// `/healthz` only; the server API, `/metrics` and the Redis-checking `/healthz` answer on the
/// internal listener.
@Suite struct InternalListenerTests {
    func withGateway(_ body: (_ ports: GatewayServer.ListeningPorts) async throws -> Void) async throws {
        try await LiveGateway.with({ _ in }, body)
    }

    static let key = ["X-API-Key": LiveGateway.apiKey]

    @Test func thePublicPortAnswers404ToTheServerAPIAndMetrics() async throws {
        try await withGateway { ports in
            let base = "http://127.0.0.1:\(ports.port)"
            #expect(try await Curl.request("POST", base + "/api/publish", headers: Self.key, body: #"{"channel":"chat:a","data":{}}"#).status == 404)
            #expect(try await Curl.request("POST", base + "/api/info", headers: Self.key, body: "{}").status == 404)
            #expect(try await Curl.request("GET", base + "/metrics").status == 404)
            let health = try await Curl.request("GET", base + "/healthz")
            #expect(health.status == 200 && health.body == "ok\n")
        }
    }

    @Test func theInternalListenerServesTheAPIMetricsAndHealth() async throws {
        try await withGateway { ports in
            let base = "http://127.0.0.1:\(ports.internalPort)"
            #expect(ports.internalPort != ports.port)
            let published = try await Curl.request("POST", base + "/api/publish", headers: Self.key, body: #"{"channel":"chat:a","data":{"n":1}}"#)
            #expect(published.status == 200)
            #expect(JSONValue.parse(Array(published.body.utf8))?["result"] != nil)
            #expect(try await Curl.request("POST", base + "/api/publish", body: #"{"channel":"chat:a","data":{}}"#).status == 401)
            let metrics = try await Curl.request("GET", base + "/metrics")
            #expect(metrics.status == 200 && metrics.body.contains("switchboard_gateway_api_requests_total 1"))
            let health = try await Curl.request("GET", base + "/healthz")
            #expect(health.status == 200 && health.body == "ok\n")
            // No WebSocket on the internal listener.
            #expect(try await Curl.request("GET", base + "/connection/websocket").status == 404)
        }
    }
}
