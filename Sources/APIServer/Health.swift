import Foundation
import Hummingbird
import NIOCore
import SwitchboardCore

/// One dependency `/healthz` reports on.
public struct HealthCheck: Sendable {
    public let name: String
    public let check: @Sendable () async throws -> Void

    public init(name: String, check: @escaping @Sendable () async throws -> Void) {
        self.name = name
        self.check = check
    }
}

public struct HealthReport: Encodable {
    struct Component: Encodable {
        let status: String
        let error: String?
        let latency_ms: Double
    }
    let status: String
    let version: String
    let checks: [String: Component]
}

public enum HealthEndpoint {
    /// Each check gets `timeout`; a check that hangs (a server that accepts but never answers)
    /// counts as down rather than holding the probe.
    public static func run(_ checks: [HealthCheck], timeout: Duration = .seconds(2)) async -> (healthy: Bool, report: HealthReport) {
        let results = await withTaskGroup(of: (String, HealthReport.Component).self) { group in
            for check in checks {
                group.addTask {
                    let clock = ContinuousClock()
                    let start = clock.now
                    let outcome: String? = await withTaskGroup(of: String?.self) { inner in
                        inner.addTask {
                            do {
                                try await check.check()
                                return nil
                            } catch {
                                return String(describing: error)
                            }
                        }
                        inner.addTask {
                            try? await Task.sleep(for: timeout)
                            return "timed out after \(timeout)"
                        }
                        let first = await inner.next() ?? "no result"
                        inner.cancelAll()
                        return first
                    }
                    let elapsed = clock.now - start
                    let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
                    return (check.name, .init(status: outcome == nil ? "ok" : "down", error: outcome, latency_ms: (ms * 100).rounded() / 100))
                }
            }
            var collected: [String: HealthReport.Component] = [:]
            for await (name, component) in group { collected[name] = component }
            return collected
        }
        let healthy = results.values.allSatisfy { $0.status == "ok" }
        return (healthy, HealthReport(status: healthy ? "ok" : "unavailable", version: SwitchboardVersion.current, checks: results))
    }

    static func response(_ checks: [HealthCheck]) async -> Response {
        let (healthy, report) = await run(checks)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(report)) ?? Data()
        return Response(
            status: healthy ? .ok : .serviceUnavailable,
            headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }
}
