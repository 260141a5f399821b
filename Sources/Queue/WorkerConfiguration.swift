import Foundation
import SwitchboardCore

/// Everything a worker process is tuned by. Defaults suit production; tests shorten the times.
/// `switchboard` fills it from `Settings` (the `worker` section and its WORKER_* variables).
public struct WorkerConfiguration: Sendable {
    public static let defaultConsumerGroup = "workers"
    /// 6 attempts (5 retries), waiting 1 s × 2ⁿ⁻¹ (at most 600 s) stretched by up to 20 %.
    public static let defaultRetryPolicy = RetryPolicy(
        maxAttempts: 6, baseDelay: .seconds(1), factor: 2, maxDelay: .seconds(600), jitter: .proportional(0.2))

    /// Consumer name in every group; must be unique per live process. Default `hostname-pid`.
    public var workerID: String
    /// Queues served, in the order their streams are swept. `failed` is never served.
    public var queues: [QueueName]
    /// Jobs run at once (WORKER_CONCURRENCY). Nothing more is read while all slots are busy.
    public var concurrency: Int
    /// 256 slots: a turn spends seconds waiting on its provider while using almost no CPU, so a
    /// worker with few slots sits idle while visitors queue (docs/benchmarks/sse.md, "turns in
    /// flight with a slow provider"). CPU-bound work is bounded elsewhere: extraction and other
    /// blocking calls run on NIO's thread pool (one thread per core), MariaDB calls on the store's
    /// pool, so more slots mean more waiting turns, not more busy threads.
    public static let defaultConcurrency = 256
    /// A run longer than this is cancelled and counts as a failed attempt (WORKER_JOB_TIMEOUT).
    public var jobTimeout: Duration
    /// Retries after the first run, unless the job's own `maxAttempts` says otherwise (WORKER_MAX_RETRIES):
    /// `retryPolicy.maxAttempts - 1`.
    public var maxRetries: Int {
        get { retryPolicy.maxAttempts - 1 }
        set { retryPolicy.maxAttempts = newValue + 1 }
    }
    /// An entry pending this long without its worker extending the claim is taken over by
    /// another worker (the first worker is presumed dead).
    public var visibilityTimeout: Duration
    /// On SIGTERM: how long in-flight jobs may take before they are cancelled and left pending.
    public var gracePeriod: Duration
    /// `/health` and `/metrics` listen here (WorkerHealthServer).
    public var healthHost: String
    public var healthPort: Int
    /// Most entries read (or reclaimed) in one command.
    public var batchSize: Int
    /// How long one blocking read waits for new entries before the loop checks in again.
    public var blockTime: Duration
    /// Longest sleep of the delayed-set promoter (it wakes earlier when something is due sooner).
    public var promoteInterval: Duration
    /// Attempts of a job (unless the job sets its own) and the backoff between them.
    public var retryPolicy: RetryPolicy
    /// Consumer group name shared by all workers of a queue.
    public var consumerGroup: String

    /// `maxRetries`, when given, sets `retryPolicy.maxAttempts` to `maxRetries + 1`.
    public init(
        workerID: String = WorkerConfiguration.defaultWorkerID(),
        queues: [QueueName] = QueueName.workQueues,
        concurrency: Int = WorkerConfiguration.defaultConcurrency,
        jobTimeout: Duration = .seconds(300),
        maxRetries: Int? = nil,
        visibilityTimeout: Duration = .seconds(30),
        gracePeriod: Duration = .seconds(60),
        healthHost: String = "127.0.0.1",
        healthPort: Int = 9000,
        batchSize: Int = 64,
        blockTime: Duration = .seconds(2),
        promoteInterval: Duration = .seconds(1),
        retryPolicy: RetryPolicy = WorkerConfiguration.defaultRetryPolicy,
        consumerGroup: String = WorkerConfiguration.defaultConsumerGroup
    ) {
        self.workerID = workerID
        self.queues = queues
        self.concurrency = concurrency
        self.jobTimeout = jobTimeout
        self.visibilityTimeout = visibilityTimeout
        self.gracePeriod = gracePeriod
        self.healthHost = healthHost
        self.healthPort = healthPort
        self.batchSize = batchSize
        self.blockTime = blockTime
        self.promoteInterval = promoteInterval
        self.retryPolicy = retryPolicy
        self.consumerGroup = consumerGroup
        if let maxRetries { self.maxRetries = maxRetries }
    }

    /// `hostname-pid`.
    public static func defaultWorkerID() -> String { "\(hostName())-\(getpid())" }

    /// The machine's host name (gethostname, no DNS lookup).
    public static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Throws `QueueError.invalidConfiguration` naming the first bad value.
    public func validate() throws(QueueError) {
        func bad(_ message: String) -> QueueError { QueueError(.invalidConfiguration, message) }
        if workerID.isEmpty || workerID.contains(where: \.isWhitespace) { throw bad("workerID must be non-empty without spaces") }
        if queues.isEmpty { throw bad("a worker must serve at least one queue") }
        if queues.contains(.failed) { throw bad("the 'failed' queue holds dead letters and cannot be served") }
        if Set(queues).count != queues.count { throw bad("queues are listed twice") }
        if concurrency < 1 { throw bad("concurrency must be at least 1") }
        if maxRetries < 0 { throw bad("maxRetries must be 0 or more") }
        if jobTimeout <= .zero { throw bad("jobTimeout must be positive") }
        if visibilityTimeout < .milliseconds(100) { throw bad("visibilityTimeout must be at least 100 ms") }
        if gracePeriod < .zero { throw bad("gracePeriod must not be negative") }
        if batchSize < 1 { throw bad("batchSize must be at least 1") }
        if blockTime < .milliseconds(1) { throw bad("blockTime must be at least 1 ms") }
        if !(0...65535).contains(healthPort) { throw bad("healthPort must be 0–65535") }
    }
}
