import SwitchboardCore

/// The seam between the worker runtime (`WorkerService`) and the store that holds the jobs: what
/// the runtime needs to claim, finish, retry, bury, reclaim and promote jobs, and the numbers that
/// `/metrics` reports. `RedisStreamsDriver` is the real one (a consumer group per queue stream);
/// `MemoryJobQueueDriver` keeps everything in the process, so the worker's logic (slots, timeouts,
/// retries with backoff, drain) can be tested without a server.
///
/// A driver instance speaks for one worker (one consumer): jobs it claims are this worker's until
/// finished, retried or buried, or until another worker reclaims them after the visibility timeout.
/// Every method may be called concurrently.
package protocol JobQueueDriver: Sendable {
    /// Makes `queues` ready to be claimed from (Redis: the consumer groups). Idempotent.
    func prepare(_ queues: [QueueName]) async throws

    /// Claims jobs not yet delivered to any worker: up to `limitPerQueue` from each of `queues`.
    /// With `wait` nil it answers at once; otherwise it blocks up to `wait` until at least one of
    /// the queues has a job, and claims in the same step.
    func claim(from queues: [QueueName], limitPerQueue: Int, wait: Duration?) async throws -> [DeliveredJob]

    /// How far each of `queues` has been written, for `waitForArrival`.
    func positions(of queues: [QueueName]) async throws -> QueuePositions

    /// Waits up to `timeout` until a job is added to one of the queues after `positions`, without
    /// claiming it. Returns that queue, or nil when the time passed.
    func waitForArrival(after positions: QueuePositions, timeout: Duration) async throws -> QueueName?

    /// Takes over up to `limit` jobs of `queue` whose claim was not extended for `idle` (their
    /// worker is presumed dead; jobs of this worker are included too), scanning from `cursor`
    /// (nil: the start). Returns the cursor to continue from (nil: scan complete) and the jobs.
    func reclaim(from queue: QueueName, idleFor idle: Duration, cursor: String?, limit: Int) async throws
        -> (next: String?, jobs: [DeliveredJob])

    /// How often each of `receipts` (jobs of `queue` this worker holds) has been delivered.
    func deliveryCounts(of receipts: [String], in queue: QueueName) async throws -> [String: Int]

    /// Restarts the visibility timeout of `receipts`, but only of those this worker still holds
    /// (one another worker reclaimed meanwhile is not taken back). Returns the ones still held.
    func extend(_ receipts: [String], in queue: QueueName) async throws -> Set<String>

    /// Acknowledges finished jobs: they are done and leave the queue.
    func finished(_ receipts: [String], in queue: QueueName) async throws

    /// Takes the failed run `receipt` out of `queue` and schedules `next` (its attempts and last
    /// error updated) to be claimable again after `delay`. False, changing nothing, when this
    /// worker no longer holds the job (another one finished it meanwhile).
    func retry(_ receipt: String, in queue: QueueName, next: JobEnvelope, delay: Duration) async throws -> Bool

    /// Moves `receipt` from `queue` to the failed jobs, stored as `dead` (attempts and error set).
    /// False, changing nothing, when this worker no longer holds the job.
    func bury(_ receipt: String, in queue: QueueName, as dead: JobEnvelope) async throws -> Bool

    /// Moves a job whose fields are not a job (`job.envelope` is nil) to the failed jobs as it is.
    func buryMalformed(_ job: DeliveredJob, reason: String) async throws

    /// Makes up to `limit` delayed jobs of `queue` that are due claimable. Returns how many moved
    /// and how long until the next delayed job is due (nil: none left).
    func promoteDue(in queue: QueueName, limit: Int) async throws -> (moved: Int, nextDue: Duration?)

    /// Forgets other workers that hold nothing and were idle for `idle` (housekeeping). Returns how many.
    func pruneIdleConsumers(of queue: QueueName, idleFor idle: Duration) async throws -> Int

    /// Depth, pending, delayed and oldest age of `queue` (what `/metrics` exports).
    func stats(of queue: QueueName) async throws -> QueueStats

    /// Jobs in the failed (dead-letter) store.
    func failedCount() async throws -> Int
}

/// A job a driver handed to this worker.
package struct DeliveredJob: Sendable {
    /// The queue it was claimed from.
    package var queue: QueueName
    /// The driver's handle on this delivery (the Redis stream entry id); changes on every retry.
    package var receipt: String
    /// The job, or nil when the stored fields are not a job (then it can only be buried).
    package var envelope: JobEnvelope?
    /// The stored fields in their order (kept for burying a malformed job as it was).
    package var fields: [(name: String, value: [UInt8])]

    package init(queue: QueueName, receipt: String, envelope: JobEnvelope?, fields: [(name: String, value: [UInt8])]) {
        self.queue = queue
        self.receipt = receipt
        self.envelope = envelope
        self.fields = fields
    }
}

/// How far each queue had been written at one moment (Redis: each stream's last entry id).
package struct QueuePositions: Sendable, Equatable {
    package var positions: [(queue: QueueName, position: String)]

    package init(_ positions: [(queue: QueueName, position: String)]) { self.positions = positions }

    package static func == (a: Self, b: Self) -> Bool {
        a.positions.elementsEqual(b.positions) { $0.queue == $1.queue && $0.position == $1.position }
    }
}
