import SwitchboardCore
import Synchronization

/// A `JobQueueDriver` (and `JobProducer`) that keeps every job in this process: the seam's second
/// implementation, so the worker runtime's logic — slots, timeouts, retries with backoff,
/// reclaiming, drain — runs and is tested without a server. It follows the Redis driver's
/// semantics (claims per consumer, a visibility timer per claimed job, delayed jobs, a failed
/// store) without persistence; blocking waits poll every 2 ms. Drivers made with
/// `forConsumer(_:)` share the jobs, like workers sharing a Redis. For tests it also records what
/// the worker asked of it (`scheduledRetries`), can fail claims on purpose and can make
/// acknowledgements slow (as over a congested link).
package final class MemoryJobQueueDriver: JobQueueDriver, JobProducer {
    /// A job in the failed store.
    package struct FailedEntry: Sendable {
        package var queue: QueueName
        /// nil for a malformed entry (then `fields` holds what it had).
        package var envelope: JobEnvelope?
        package var fields: [(name: String, value: [UInt8])]
        package var error: String
    }

    /// A retry the worker scheduled: the job, the attempts it has used, and the backoff asked for.
    package struct ScheduledRetry: Sendable, Equatable {
        package var jobID: JobID
        package var attempts: Int
        package var delay: Duration

        package init(jobID: JobID, attempts: Int, delay: Duration) {
            self.jobID = jobID
            self.attempts = attempts
            self.delay = delay
        }
    }

    private struct Stored: Sendable {
        var id: Int
        var queue: QueueName
        var envelope: JobEnvelope?
        var fields: [(name: String, value: [UInt8])]
        var addedAt: ContinuousClock.Instant
        var receipt: String { String(id) }
    }

    private struct Claim: Sendable {
        var job: Stored
        var owner: String
        var deliveries: Int
        var touched: ContinuousClock.Instant
    }

    private struct State: Sendable {
        var nextID = 0
        var ready: [QueueName: [Stored]] = [:]
        var pending: [QueueName: [Int: Claim]] = [:]
        var delayed: [(due: ContinuousClock.Instant, queue: QueueName, envelope: JobEnvelope)] = []
        var failed: [FailedEntry] = []
        var lastAdded: [QueueName: Int] = [:]
        var idempotency: [String: (id: JobID, expires: ContinuousClock.Instant)] = [:]
        var retries: [ScheduledRetry] = []
        var failingClaims = 0
        var acknowledgementDelay: Duration = .zero

        mutating func add(_ envelope: JobEnvelope?, fields: [(name: String, value: [UInt8])], to queue: QueueName) {
            nextID += 1
            ready[queue, default: []].append(
                Stored(id: nextID, queue: queue, envelope: envelope, fields: fields, addedAt: .now))
            lastAdded[queue] = nextID
        }
    }

    private final class Store: Sendable {
        let state = Mutex(State())
    }

    /// The consumer (worker) this driver speaks for.
    package let consumer: String
    private let store: Store

    package init(consumer: String = "memory-worker") {
        self.consumer = consumer
        self.store = Store()
    }

    private init(consumer: String, store: Store) {
        self.consumer = consumer
        self.store = store
    }

    /// Another worker's driver over the same jobs.
    package func forConsumer(_ name: String) -> MemoryJobQueueDriver {
        MemoryJobQueueDriver(consumer: name, store: store)
    }

    // MARK: producing

    @discardableResult
    package func enqueue<P: JobPayload>(_ job: P, on queue: QueueName, options: EnqueueOptions) async throws -> JobID {
        try JobQueue.checkWritable(queue)
        let payload = try job.encodedPayload()
        return try await JobTracing.enqueue(job: P.name, queue: queue) { traceparent in
            let envelope = JobEnvelope(
                id: .make(), name: P.name, version: P.version, payload: payload, attempts: 0,
                maxAttempts: max(0, options.maxAttempts ?? 0), enqueuedAtMicros: JobEnvelope.nowMicros(), traceparent: traceparent)
            return add(envelope, on: queue, options: options)
        }
    }

    private func add(_ envelope: JobEnvelope, on queue: QueueName, options: EnqueueOptions) -> JobID {
        store.state.withLock { state in
            let now = ContinuousClock.now
            if let key = options.idempotencyKey {
                if let known = state.idempotency["\(queue):\(key)"], known.expires > now { return known.id }
                state.idempotency["\(queue):\(key)"] = (envelope.id, now + options.idempotencyTTL)
            }
            if let delay = options.delay, delay > .zero {
                state.delayed.append((now + delay, queue, envelope))
            } else {
                state.add(envelope, fields: Self.fields(envelope), to: queue)
            }
            return envelope.id
        }
    }

    /// Adds raw fields to `queue` as they are (a malformed job when they lack id, name or data).
    package func add(fields: [(name: String, value: [UInt8])], to queue: QueueName) {
        var indexed: [String: [UInt8]] = [:]
        for field in fields { indexed[field.name] = field.value }
        store.state.withLock { $0.add(JobEnvelope(fields: indexed), fields: fields, to: queue) }
    }

    // MARK: JobQueueDriver

    package func prepare(_ queues: [QueueName]) async throws {}

    package func claim(from queues: [QueueName], limitPerQueue: Int, wait: Duration?) async throws -> [DeliveredJob] {
        let deadline = wait.map { ContinuousClock.now + $0 }
        while true {
            let claimed = try store.state.withLock { state throws -> [DeliveredJob] in
                if state.failingClaims > 0 {
                    state.failingClaims -= 1
                    throw QueueError(.unexpectedReply, "injected claim failure")
                }
                var jobs: [DeliveredJob] = []
                let now = ContinuousClock.now
                for queue in queues {
                    let taken = (state.ready[queue] ?? []).prefix(limitPerQueue)
                    state.ready[queue]?.removeFirst(taken.count)
                    for job in taken {
                        state.pending[queue, default: [:]][job.id] = Claim(job: job, owner: consumer, deliveries: 1, touched: now)
                        jobs.append(Self.delivered(job))
                    }
                }
                return jobs
            }
            guard claimed.isEmpty, let deadline, ContinuousClock.now < deadline else { return claimed }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    package func positions(of queues: [QueueName]) async throws -> QueuePositions {
        store.state.withLock { state in QueuePositions(queues.map { ($0, String(state.lastAdded[$0] ?? 0)) }) }
    }

    package func waitForArrival(after positions: QueuePositions, timeout: Duration) async throws -> QueueName? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let woken = store.state.withLock { state in
                positions.positions.first { (state.lastAdded[$0.queue] ?? 0) > (Int($0.position) ?? 0) }?.queue
            }
            if let woken { return woken }
            if ContinuousClock.now >= deadline { return nil }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    package func reclaim(from queue: QueueName, idleFor idle: Duration, cursor: String?, limit: Int) async throws
        -> (next: String?, jobs: [DeliveredJob])
    {
        store.state.withLock { state in
            let now = ContinuousClock.now
            let start = cursor.flatMap { Int($0) } ?? 0
            let idleIDs = (state.pending[queue] ?? [:]).values
                .filter { $0.job.id >= start && now - $0.touched >= idle }.map(\.job.id).sorted()
            var jobs: [DeliveredJob] = []
            for id in idleIDs.prefix(limit) {
                guard var claim = state.pending[queue]?[id] else { continue }
                claim.owner = consumer
                claim.deliveries += 1
                claim.touched = now
                state.pending[queue]?[id] = claim
                jobs.append(Self.delivered(claim.job))
            }
            let next = idleIDs.count > limit ? String(idleIDs[limit]) : nil
            return (next, jobs)
        }
    }

    package func deliveryCounts(of receipts: [String], in queue: QueueName) async throws -> [String: Int] {
        store.state.withLock { state in
            var counts: [String: Int] = [:]
            for receipt in receipts {
                if let id = Int(receipt), let claim = state.pending[queue]?[id], claim.owner == consumer {
                    counts[receipt] = claim.deliveries
                }
            }
            return counts
        }
    }

    package func extend(_ receipts: [String], in queue: QueueName) async throws -> Set<String> {
        store.state.withLock { state in
            var owned: Set<String> = []
            for receipt in receipts {
                guard let id = Int(receipt), state.pending[queue]?[id]?.owner == consumer else { continue }
                state.pending[queue]?[id]?.touched = .now
                owned.insert(receipt)
            }
            return owned
        }
    }

    package func finished(_ receipts: [String], in queue: QueueName) async throws {
        let delay = store.state.withLock { $0.acknowledgementDelay }
        if delay > .zero { try await Task.sleep(for: delay) }
        store.state.withLock { state in
            for receipt in receipts { if let id = Int(receipt) { state.pending[queue]?[id] = nil } }
        }
    }

    package func retry(_ receipt: String, in queue: QueueName, next: JobEnvelope, delay: Duration) async throws -> Bool {
        store.state.withLock { state in
            guard let id = Int(receipt), state.pending[queue]?.removeValue(forKey: id) != nil else { return false }
            state.delayed.append((.now + delay, queue, next))
            state.retries.append(ScheduledRetry(jobID: next.id, attempts: next.attempts, delay: delay))
            return true
        }
    }

    package func bury(_ receipt: String, in queue: QueueName, as dead: JobEnvelope) async throws -> Bool {
        store.state.withLock { state in
            guard let id = Int(receipt), state.pending[queue]?.removeValue(forKey: id) != nil else { return false }
            state.failed.append(FailedEntry(queue: queue, envelope: dead, fields: Self.fields(dead), error: dead.lastError ?? ""))
            return true
        }
    }

    package func buryMalformed(_ job: DeliveredJob, reason: String) async throws {
        store.state.withLock { state in
            guard let id = Int(job.receipt), state.pending[job.queue]?.removeValue(forKey: id) != nil else { return }
            state.failed.append(FailedEntry(queue: job.queue, envelope: nil, fields: job.fields, error: reason))
        }
    }

    package func promoteDue(in queue: QueueName, limit: Int) async throws -> (moved: Int, nextDue: Duration?) {
        store.state.withLock { state in
            let now = ContinuousClock.now
            var moved = 0
            var kept: [(due: ContinuousClock.Instant, queue: QueueName, envelope: JobEnvelope)] = []
            for item in state.delayed.sorted(by: { $0.due < $1.due }) {
                if item.queue == queue && item.due <= now && moved < limit {
                    state.add(item.envelope, fields: Self.fields(item.envelope), to: queue)
                    moved += 1
                } else {
                    kept.append(item)
                }
            }
            state.delayed = kept
            let nextDue = kept.first { $0.queue == queue }.map { max(Duration.zero, $0.due - now) }
            return (moved, nextDue)
        }
    }

    package func pruneIdleConsumers(of queue: QueueName, idleFor idle: Duration) async throws -> Int { 0 }

    package func stats(of queue: QueueName) async throws -> QueueStats {
        store.state.withLock { state in
            let ready = state.ready[queue] ?? []
            let pending = state.pending[queue] ?? [:]
            let oldest = (ready.map(\.addedAt) + pending.values.map(\.job.addedAt)).min()
            return QueueStats(
                queue: queue, depth: ready.count + pending.count, pending: pending.count,
                delayed: state.delayed.filter { $0.queue == queue }.count,
                oldestAge: oldest.map { ContinuousClock.now - $0 } ?? .zero)
        }
    }

    package func failedCount() async throws -> Int {
        store.state.withLock { $0.failed.count }
    }

    // MARK: inspection (tests)

    /// The failed store, oldest first.
    package var failedJobs: [FailedEntry] { store.state.withLock { $0.failed } }
    /// Every retry scheduled so far, in order.
    package var scheduledRetries: [ScheduledRetry] { store.state.withLock { $0.retries } }
    /// Jobs of `queue` claimed and not yet finished, retried or buried.
    package func pendingCount(_ queue: QueueName) -> Int { store.state.withLock { $0.pending[queue]?.count ?? 0 } }
    /// Jobs of `queue` waiting to be claimed (not delayed).
    package func readyCount(_ queue: QueueName) -> Int { store.state.withLock { $0.ready[queue]?.count ?? 0 } }
    /// Makes the next `count` claims throw, as a store that went away would.
    package func failNextClaims(_ count: Int) { store.state.withLock { $0.failingClaims += count } }

    /// Every acknowledgement from now on takes `delay` before it is applied.
    package func delayAcknowledgements(by delay: Duration) { store.state.withLock { $0.acknowledgementDelay = delay } }

    private static func fields(_ envelope: JobEnvelope) -> [(name: String, value: [UInt8])] {
        envelope.fields.map { (name: $0.0, value: $0.1) }
    }

    private static func delivered(_ job: Stored) -> DeliveredJob {
        DeliveredJob(queue: job.queue, receipt: job.receipt, envelope: job.envelope, fields: job.fields)
    }
}
