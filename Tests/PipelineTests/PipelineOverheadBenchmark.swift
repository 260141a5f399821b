import AIProviders
import Foundation
import Pipeline
import Storage
import SwitchboardCore
import Testing
import Turns

/// The pipeline's own time per turn with an instant provider: from `run` to the first `chunk`
/// (classification with cached rules, topic lookup, task rows, executor). Not a test: it measures,
/// and runs only with SB_BENCH_PIPELINE=1 (scripts/bench/pipeline.sh). Prints p50/p99.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["SB_BENCH_PIPELINE"] == "1"), .serialized)
struct PipelineOverheadBenchmark {
    /// Records when the first chunk arrived.
    actor FirstChunk: TurnEventSink {
        var at: ContinuousClock.Instant?
        func emit(_ event: TurnEvent) async throws {
            if at == nil, case .chunk = event { at = .now }
        }
    }

    static let provider = ScriptedProvider { request in
        request.slot == .sort ? .init(text: #"{"topic":"general","language":"en","web_search":false,"multi":false}"#) : .init(text: "ok")
    }

    static func percentile(_ values: [Duration], _ p: Double) -> Double {
        let sorted = values.sorted()
        let index = min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))
        let (seconds, attoseconds) = sorted[index].components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }

    static func turn(_ pipeline: RoutingPipeline, userID: Int64, index: Int) async throws -> Duration {
        let sink = FirstChunk()
        // Long enough to skip the fast path, matching no rule: classification goes to the (instant) sorter.
        let input = TurnInput(messageID: Int64(index + 1), userID: userID, text: "Please explain how the tides of the ocean work, number \(index)")
        let started = ContinuousClock.now
        _ = try await pipeline.run(turn: input, sink: sink)
        return try #require(await sink.at) - started
    }

    @Test func overheadPerTurn() async throws {
        let count = Int(ProcessInfo.processInfo.environment["SB_BENCH_TURNS"] ?? "1000") ?? 1000
        let rate = Double(ProcessInfo.processInfo.environment["SB_BENCH_RATE"] ?? "200") ?? 200
        try await TestDatabase.with { stores in
            let user = try await stores.users.createUser(email: "bench@example.com", name: "B", role: .user)
            var configuration = PipelineConfiguration()
            configuration.classifier.useEmbeddingRouter = false
            let pipeline = RoutingPipeline(provider: Self.provider, stores: stores, redis: nil, configuration: configuration)
            for index in 0..<20 { _ = try await Self.turn(pipeline, userID: user.id, index: index) }  // warm-up

            var sequential: [Duration] = []
            for index in 0..<count { sequential.append(try await Self.turn(pipeline, userID: user.id, index: index)) }

            // Open loop at `rate` turns/s: turn i starts at i/rate whatever the others do.
            let start = ContinuousClock.now
            let paced = try await withThrowingTaskGroup(of: Duration.self) { group in
                for index in 0..<count {
                    try await Task.sleep(until: start + .microseconds(Int64(Double(index) / rate * 1_000_000)), clock: .continuous)
                    group.addTask { try await Self.turn(pipeline, userID: user.id, index: index) }
                }
                var all: [Duration] = []
                for try await value in group { all.append(value) }
                return all
            }
            let elapsed = ContinuousClock.now - start
            func line(_ name: String, _ values: [Duration]) -> String {
                String(format: "%@: turns=%d p50=%.2f ms p99=%.2f ms max=%.2f ms", name, values.count, Self.percentile(values, 0.5), Self.percentile(values, 0.99), Self.percentile(values, 1))
            }
            print("pipeline overhead (run → first chunk, instant provider, task rows in MariaDB)")
            print(line("sequential (1 at a time)", sequential))
            print(line(String(format: "paced %.0f turns/s (achieved %.0f/s)", rate, Double(count) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)), paced))
        }
    }
}
