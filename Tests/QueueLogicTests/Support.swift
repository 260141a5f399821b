import Logging
import Queue
import Synchronization
import SwitchboardCore
import Testing

/// What the logic tests share: a worker on a `MemoryJobQueueDriver` with short times, a recorder
/// of what handlers saw, and polling for a condition.
enum Logic {
    /// One queue, short times, deterministic backoff (no jitter).
    static func configuration(
        queues: [QueueName] = [.ai], concurrency: Int = 4, jobTimeout: Duration = .seconds(30),
        visibilityTimeout: Duration = .milliseconds(400),
        gracePeriod: Duration = .seconds(5), retryPolicy: RetryPolicy = Logic.retryPolicy
    ) -> WorkerConfiguration {
        WorkerConfiguration(
            workerID: "logic-\(UInt32.random(in: 0...UInt32.max))", queues: queues, concurrency: concurrency,
            jobTimeout: jobTimeout, visibilityTimeout: visibilityTimeout, gracePeriod: gracePeriod, healthPort: 0,
            blockTime: .milliseconds(100), promoteInterval: .milliseconds(20), retryPolicy: retryPolicy)
    }

    static let retryPolicy = RetryPolicy(
        maxAttempts: 3, baseDelay: .milliseconds(40), factor: 2, maxDelay: .seconds(1), jitter: .none)

    /// A worker on `driver`, running in a task.
    static func start(
        _ driver: MemoryJobQueueDriver, registry: JobRegistry, configuration: WorkerConfiguration
    ) throws -> (WorkerService, Task<Void, any Error>) {
        var logger = Logger(label: "queue-logic-tests.worker")
        logger.logLevel = .critical
        let worker = try WorkerService(driver: driver, registry: registry, configuration: configuration, logger: logger)
        return (worker, Task { try await worker.run() })
    }

    /// Polls `condition` every 5 ms until it holds; records an issue and throws after `timeout`.
    /// The timeout is generous because it costs nothing when the condition holds, and the whole
    /// suite shares two cores with the integration tests, where a few seconds' stall happens.
    static func eventually(
        _ what: String, timeout: Duration = .seconds(30), sourceLocation: SourceLocation = #_sourceLocation,
        _ condition: () async throws -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(5))
        }
        Issue.record("timed out waiting for: \(what)", sourceLocation: sourceLocation)
        throw TimedOut()
    }

    struct TimedOut: Error {}
}

/// What handlers report: runs in progress (and the most at once), runs started and ended,
/// and free-form events in order.
final class Recorder: Sendable {
    private struct State {
        var running = 0
        var peak = 0
        var started = 0
        var completed = 0
        var events: [String] = []
        var startTimes: [ContinuousClock.Instant] = []
    }
    private let state = Mutex(State())

    func begin() {
        state.withLock {
            $0.running += 1
            $0.started += 1
            $0.peak = max($0.peak, $0.running)
            $0.startTimes.append(.now)
        }
    }

    func end(completed: Bool) {
        state.withLock {
            $0.running -= 1
            if completed { $0.completed += 1 }
        }
    }

    func note(_ event: String) { state.withLock { $0.events.append(event) } }

    var peak: Int { state.withLock { $0.peak } }
    var started: Int { state.withLock { $0.started } }
    var completed: Int { state.withLock { $0.completed } }
    var events: [String] { state.withLock { $0.events } }
    var startTimes: [ContinuousClock.Instant] { state.withLock { $0.startTimes } }
}

/// A job that sleeps `milliseconds` (cancellable) and then completes.
struct Nap: JobPayload {
    static let name = "logic.nap"
    var milliseconds: Int
}

/// A job that always fails, with a permanent error when `permanent`.
struct Doomed: JobPayload {
    static let name = "logic.doomed"
    var permanent = false
}

struct Rejected: PermanentJobError, CustomStringConvertible {
    var description: String { "rejected for good" }
}

struct Flaky: Error, CustomStringConvertible {
    var attempt: Int
    var description: String { "flaky failure on attempt \(attempt)" }
}

extension JobRegistry {
    /// `Nap` and `Doomed`, reporting to `recorder`.
    static func logic(_ recorder: Recorder) -> JobRegistry {
        var registry = JobRegistry()
        registry.register(Nap.self) { job, context in
            recorder.begin()
            do {
                try await Task.sleep(for: .milliseconds(job.milliseconds))
            } catch {
                recorder.note("cancelled attempt \(context.attempt)")
                recorder.end(completed: false)
                throw error
            }
            recorder.end(completed: true)
        }
        registry.register(Doomed.self) { job, context in
            recorder.begin()
            recorder.end(completed: false)
            if job.permanent { throw Rejected() }
            throw Flaky(attempt: context.attempt)
        }
        return registry
    }
}
