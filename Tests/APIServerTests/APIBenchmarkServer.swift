import APIServer
import Foundation
import Testing
import TurnTestSupport
import Turns

/// Not a test: the server side of scripts/bench/api.sh, enabled only when SB_API_BENCH_INFO is set.
/// Runs an api node and a worker with the instant echo responder on a throw-away database, writes
/// `port key` to SB_API_BENCH_INFO, and serves until the file SB_API_BENCH_STOP exists.
@Suite("API benchmark server")
struct APIBenchmarkServer {
    static var infoPath: String? { ProcessInfo.processInfo.environment["SB_API_BENCH_INFO"] }
    static var stopPath: String? { ProcessInfo.processInfo.environment["SB_API_BENCH_STOP"] }

    @Test(.enabled(if: infoPath != nil && stopPath != nil))
    func serveForTheBenchmark() async throws {
        let infoPath = try #require(Self.infoPath), stopPath = try #require(Self.stopPath)
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser("bench@example.com")
            // Limits high enough not to interfere; the GCRA check still runs on every request.
            let limits = RateLimitSettings(
                perUser: RateLimitRule(limit: 10_000_000, period: .seconds(60)), perIP: RateLimitRule(limit: 10_000_000, period: .seconds(60)))
            try await env.withWorker(responder: EchoResponder()) {
                try await LiveServer.with(env.dependencies(limits: limits)) { port in
                    try "\(port) \(key)\n".write(toFile: infoPath, atomically: true, encoding: .utf8)
                    while !FileManager.default.fileExists(atPath: stopPath) {
                        try await Task.sleep(for: .milliseconds(200))
                    }
                }
            }
        }
    }
}
