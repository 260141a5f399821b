import Foundation
import Queue
import RedisClient
import Synchronization

/// QueueTestJobs: jobs that exercise the queue itself, shared by the queue tests and the
/// benchmark harness (`switchboard-bench queue worker`), and shipped in no product. Each records
/// what happened under `diag:{tag}:...` keys (prefixed by the client), so a test counts
/// executions in Redis across worker processes.
public enum DiagnosticJobs {
    /// Does nothing (throughput benchmark). Optionally feeds a latency recorder.
    public struct Noop: JobPayload {
        public static let name = "diag.noop"
        public init() {}
    }

    /// Records its completion: SADD `diag:{tag}:done` job id, INCR `diag:{tag}:runs`,
    /// HINCRBY `diag:{tag}:workers` worker id.
    public struct Mark: JobPayload {
        public static let name = "diag.mark"
        public var tag: String
        public init(tag: String) { self.tag = tag }
    }

    /// Records its start (RPUSH `diag:{tag}:starts` "worker attempt deliveries unix-ms"), sleeps
    /// `milliseconds` (cancellable), then records completion (INCR `diag:{tag}:completions`,
    /// SADD `diag:{tag}:done` job id).
    public struct Sleep: JobPayload {
        public static let name = "diag.sleep"
        public var tag: String
        public var milliseconds: Int
        public init(tag: String, milliseconds: Int) {
            self.tag = tag
            self.milliseconds = milliseconds
        }
    }

    /// Counts its runs (INCR `diag:{tag}:runs`, RPUSH `diag:{tag}:at` unix-ms) and fails while the
    /// run count is at most `failures` (negative: always). Then SADD `diag:{tag}:done` job id.
    public struct Fail: JobPayload {
        public static let name = "diag.fail"
        public var tag: String
        public var failures: Int
        public init(tag: String, failures: Int) {
            self.tag = tag
            self.failures = failures
        }
    }

    public struct InjectedFailure: Error, CustomStringConvertible {
        public let run: Int64
        public var description: String { "injected failure (run \(run))" }
    }

    /// Executions of `Noop` in this process, when a counter is given (the benchmark counts what ran,
    /// not what left the stream: a job moved to `failed` or the delayed set also leaves it).
    public final class ExecutionCounter: Sendable {
        private let count = Atomic<Int>(0)
        public init() {}
        func increment() { count.add(1, ordering: .relaxed) }
        public var value: Int { count.load(ordering: .relaxed) }
    }

    /// Enqueue→start latencies in microseconds, collected by `Noop` when a recorder is given.
    public final class LatencyRecorder: Sendable {
        private let samples = Mutex<[Int64]>([])
        public init() {}
        func record(_ micros: Int64) { samples.withLock { $0.append(micros) } }
        public var values: [Int64] { samples.withLock { $0 } }
    }

    static func nowMillis() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }

    /// Pipelines `commands` and throws the first `-ERR` reply. `RedisClient.pipeline` returns
    /// error replies in place instead of throwing, and right after a Redis restart every command
    /// is answered `-LOADING` until the dataset is loaded: a handler that ignored those replies
    /// returned normally, so its job was acknowledged without having recorded its completion.
    static func pipelineOrThrow(_ client: RedisClient, _ commands: [RedisCommand]) async throws {
        let replies = try await client.pipeline(commands)
        if let error = replies.first(where: { $0.errorMessage != nil })?.errorMessage { throw RedisError.server(error) }
    }

    /// Registers the diagnostic handlers; they write through `client`.
    public static func register(
        in registry: inout JobRegistry, client: RedisClient, latency: LatencyRecorder? = nil, executed: ExecutionCounter? = nil
    ) {
        registry.register(Noop.self) { _, context in
            executed?.increment()
            if let latency {
                latency.record(Int64((Date().timeIntervalSince(context.enqueuedAt) * 1_000_000).rounded()))
            }
        }
        registry.register(Mark.self) { job, context in
            try await pipelineOrThrow(client, [
                RedisCommand("SADD", client.key("diag:\(job.tag):done"), context.jobID.rawValue),
                RedisCommand("INCR", client.key("diag:\(job.tag):runs")),
                RedisCommand("HINCRBY", client.key("diag:\(job.tag):workers"), context.workerID, 1),
            ])
        }
        registry.register(Sleep.self) { job, context in
            _ = try await client.rpush(
                "diag:\(job.tag):starts",
                ["\(context.workerID) \(context.attempt) \(context.deliveryCount) \(nowMillis())"])
            try await Task.sleep(for: .milliseconds(job.milliseconds))
            try await pipelineOrThrow(client, [
                RedisCommand("INCR", client.key("diag:\(job.tag):completions")),
                RedisCommand("SADD", client.key("diag:\(job.tag):done"), context.jobID.rawValue),
            ])
        }
        registry.register(Fail.self) { job, context in
            let run = try await client.incr("diag:\(job.tag):runs")
            _ = try await client.rpush("diag:\(job.tag):at", ["\(nowMillis())"])
            if job.failures < 0 || run <= Int64(job.failures) { throw InjectedFailure(run: run) }
            try await pipelineOrThrow(client, [RedisCommand("SADD", client.key("diag:\(job.tag):done"), context.jobID.rawValue)])
        }
    }
}
