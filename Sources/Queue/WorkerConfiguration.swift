import Foundation
import SwitchboardCore

/// Everything a worker process is tuned by. Defaults suit production; tests shorten the times.
public struct WorkerConfiguration: Sendable {
    public static let defaultConsumerGroup = "workers"

    /// Consumer name in every group; must be unique per live process. Default `hostname-pid`.
    public var workerID: String
    /// Queues served, in the order their streams are swept. `failed` is never served.
    public var queues: [QueueName]
    /// Jobs run at once (WORKER_CONCURRENCY). Nothing more is read while all slots are busy.
    public var concurrency: Int
    /// A run longer than this is cancelled and counts as a failed attempt (WORKER_JOB_TIMEOUT).
    public var jobTimeout: Duration
    /// Retries after the first run, unless the job's own `maxAttempts` says otherwise (WORKER_MAX_RETRIES).
    public var maxRetries: Int
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
    /// Backoff between attempts.
    public var retryPolicy: RetryPolicy
    /// Consumer group name shared by all workers of a queue.
    public var consumerGroup: String

    public init(
        workerID: String = WorkerConfiguration.defaultWorkerID(),
        queues: [QueueName] = QueueName.workQueues,
        concurrency: Int = 8,
        jobTimeout: Duration = .seconds(300),
        maxRetries: Int = 5,
        visibilityTimeout: Duration = .seconds(30),
        gracePeriod: Duration = .seconds(60),
        healthHost: String = "127.0.0.1",
        healthPort: Int = 9000,
        batchSize: Int = 64,
        blockTime: Duration = .seconds(2),
        promoteInterval: Duration = .seconds(1),
        retryPolicy: RetryPolicy = RetryPolicy(),
        consumerGroup: String = WorkerConfiguration.defaultConsumerGroup
    ) {
        self.workerID = workerID
        self.queues = queues
        self.concurrency = concurrency
        self.jobTimeout = jobTimeout
        self.maxRetries = maxRetries
        self.visibilityTimeout = visibilityTimeout
        self.gracePeriod = gracePeriod
        self.healthHost = healthHost
        self.healthPort = healthPort
        self.batchSize = batchSize
        self.blockTime = blockTime
        self.promoteInterval = promoteInterval
        self.retryPolicy = retryPolicy
        self.consumerGroup = consumerGroup
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

/// Exponential backoff with jitter: attempt n waits `base * factor^(n-1)`, capped at `maximum`,
/// stretched by a random 0…`jitter` fraction so retries of many jobs spread out.
public struct RetryPolicy: Sendable, Equatable {
    public var base: Duration
    public var factor: Double
    public var maximum: Duration
    public var jitter: Double

    public init(base: Duration = .seconds(1), factor: Double = 2, maximum: Duration = .seconds(600), jitter: Double = 0.2) {
        self.base = base
        self.factor = factor
        self.maximum = maximum
        self.jitter = jitter
    }

    /// The wait before the next run after `failedAttempt` (1-based) failed.
    public func delay(afterAttempt failedAttempt: Int, random: Double = Double.random(in: 0...1)) -> Duration {
        let baseSeconds = Self.seconds(base)
        let exponent = Double(max(0, failedAttempt - 1))
        let raw = min(Self.seconds(maximum), baseSeconds * pow(factor, exponent))
        return .milliseconds(Int64((raw * (1 + max(0, jitter) * random) * 1000).rounded()))
    }

    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

extension WorkerConfiguration {
    /// Applies the worker's environment variables over `self`: WORKER_ID, WORKER_QUEUES
    /// (comma-separated), WORKER_CONCURRENCY, WORKER_JOB_TIMEOUT, WORKER_MAX_RETRIES,
    /// WORKER_VISIBILITY_TIMEOUT, WORKER_GRACE_PERIOD (seconds, fractions allowed),
    /// WORKER_HEALTH_HOST, WORKER_HEALTH_PORT. Unset variables leave fields as they are.
    public func overriding(environment: [String: String]) throws(QueueError) -> WorkerConfiguration {
        var configuration = self
        func value(_ name: String) -> String? {
            environment[name].map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { $0.isEmpty ? nil : $0 }
        }
        func int(_ name: String) throws(QueueError) -> Int? {
            guard let text = value(name) else { return nil }
            guard let n = Int(text) else { throw QueueError(.invalidConfiguration, "\(name) must be an integer, got '\(text)'") }
            return n
        }
        func seconds(_ name: String) throws(QueueError) -> Duration? {
            guard let text = value(name) else { return nil }
            guard let s = Double(text), s.isFinite, s >= 0 else {
                throw QueueError(.invalidConfiguration, "\(name) must be a number of seconds, got '\(text)'")
            }
            return .milliseconds(Int64((s * 1000).rounded()))
        }
        if let id = value("WORKER_ID") { configuration.workerID = id }
        if let queues = value("WORKER_QUEUES") {
            var parsed: [QueueName] = []
            for name in queues.split(separator: ",") { parsed.append(try QueueName.parse(String(name))) }
            configuration.queues = parsed
        }
        if let n = try int("WORKER_CONCURRENCY") { configuration.concurrency = n }
        if let d = try seconds("WORKER_JOB_TIMEOUT") { configuration.jobTimeout = d }
        if let n = try int("WORKER_MAX_RETRIES") { configuration.maxRetries = n }
        if let d = try seconds("WORKER_VISIBILITY_TIMEOUT") { configuration.visibilityTimeout = d }
        if let d = try seconds("WORKER_GRACE_PERIOD") { configuration.gracePeriod = d }
        if let host = value("WORKER_HEALTH_HOST") { configuration.healthHost = host }
        if let n = try int("WORKER_HEALTH_PORT") { configuration.healthPort = n }
        try configuration.validate()
        return configuration
    }
}
