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

    /// Bytes the HTTP parser cannot read, on either listener (after a request it answered, too):
    /// a JSON 400 and the connection closed.
    @Test func aRequestTheParserCannotReadIsAJSON400() async throws {
        try await withGateway { ports in
            for port in [ports.port, ports.internalPort] {
                for request in [
                    "GARBAGE / HTTP/1.1\r\nHost: x\r\n\r\n",
                    "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
                    "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n\u{01}\u{02} nonsense\r\n\r\n",
                ] {
                    let connection = try await WebSocketHandshakeIntegrationTests.RawConnection.open(port: port)
                    try await connection.send(Array(request.utf8))
                    let answer = await connection.text { $0.contains("malformed_request") }
                    let last = answer.components(separatedBy: "HTTP/1.1 ").last ?? ""
                    #expect(last.hasPrefix("400 ") && last.contains("Content-Type: application/json"), "\(port) \(request): \(answer)")
                    #expect(last.hasSuffix(#"{"error":{"code":"malformed_request","message":"the request is not HTTP/1 this server can read"}}"#))
                    #expect(await connection.closes(within: .seconds(10)))
                }
            }
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
