import Foundation
import Hummingbird
import RedisClient
import TestSupport
import Testing

@testable import APIServer

/// The api's two listeners on real sockets: `/metrics` is not on the public port (404 in the JSON
/// error shape) and is on the internal listener, with `/healthz` on both.
@Suite struct APIInternalListenerTests {
    /// The internal application on a free loopback port for the duration of `body`.
    static func withInternal<T>(checks: [HealthCheck], _ body: (Int) async throws -> T) async throws -> T {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = APIApplication.buildInternal(host: "127.0.0.1", port: 0, healthChecks: checks, logger: TestEnvironment.logger) { channel in
            continuation.yield(channel.localAddress?.port ?? 0)
        }
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            task.cancel()
            throw CancellationError()
        }
        let result = await Result(catching: { try await body(port) })
        task.cancel()
        _ = await task.result
        return try result.get()
    }

    @Test func metricsAnswer404OnThePublicPortAndPrometheusTextOnTheInternalOne() async throws {
        try await TestEnvironment.with { env in
            let redis = env.redis
            let checks = [HealthCheck(name: "redis") { try await redis.ping() }]
            try await LiveServer.with(env.dependencies()) { publicPort in
                try await Self.withInternal(checks: checks) { internalPort in
                    let publicBase = "http://127.0.0.1:\(publicPort)"
                    let internalBase = "http://127.0.0.1:\(internalPort)"
                    let refused = try await Curl.request("GET", publicBase + "/metrics")
                    #expect(refused.status == 404)
                    #expect(refused.body.contains(#""code":"not_found""#))
                    #expect(try await Curl.request("GET", publicBase + "/healthz").status == 200)

                    let metrics = try await Curl.request("GET", internalBase + "/metrics")
                    #expect(metrics.status == 200)
                    // The public port's requests are counted on the internal page.
                    #expect(metrics.body.contains("hb_requests"))
                    let health = try await Curl.request("GET", internalBase + "/healthz")
                    #expect(health.status == 200 && health.body.contains(#""redis""#))
                    // The public API is not served on the internal listener.
                    #expect(try await Curl.request("GET", internalBase + "/api/v1/me").status == 404)
                }
            }
        }
    }

    /// The internal listener answers in the one JSON error shape too: an unknown path or method,
    /// and bytes the HTTP parser cannot read (Hummingbird alone sends them empty).
    @Test func itsErrorsAreInTheJSONShape() async throws {
        try await Self.withInternal(checks: []) { port in
            let base = "http://127.0.0.1:\(port)"
            let missing = try await Curl.request("GET", base + "/nope")
            #expect(missing.status == 404 && missing.body.contains(#""code":"not_found""#), "\(missing.body)")
            // Hummingbird routes a path and a method together: a POST to a GET route is a 404.
            let wrongMethod = try await Curl.request("POST", base + "/metrics", body: "{}")
            #expect(wrongMethod.status == 404 && wrongMethod.body.contains(#""code":"not_found""#), "\(wrongMethod.body)")
            for request in ["GARBAGE / HTTP/1.1\r\nHost: x\r\n\r\n", "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"] {
                let answer = try await RawExchange.send(Array(request.utf8), port: port)
                #expect(answer.text.hasPrefix("HTTP/1.1 400 "), "\(answer.text)")
                #expect(answer.text.contains(#""code":"malformed_request""#), "\(answer.text)")
                #expect(answer.closed, "the connection stayed open")
            }
        }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
