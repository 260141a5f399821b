import Foundation
import Logging
import RedisClient
import ServiceLifecycle
import SwitchboardCore
import Synchronization
import UnixSignals

/// The worker runtime: drains the configured queues with `concurrency` slots.
///
/// One loop reads (XREADGROUP, never more entries than free slots), one promotes due delayed
/// jobs, one reclaims entries of dead workers (XAUTOCLAIM after the visibility timeout), one
/// watches running jobs (timeouts, claim extension), one acknowledges finished entries in
/// batches (XACK + XDEL in one script). Jobs are acknowledged only after their handler returned.
/// On graceful shutdown it stops reading, lets running jobs finish within the grace period, then
/// cancels them; whatever did not finish stays pending for another worker.
public final class WorkerService: Service, Sendable {
    public let configuration: WorkerConfiguration
    public let client: RedisClient
    public let metrics: WorkerMetrics
    let registry: JobRegistry
    let logger: Logger
    let startedAt = ContinuousClock.now

    private let state = Mutex(State())
    private let slotFreed = WakeUp()
    private let acksQueued = WakeUp()

    private struct State {
        var freeSlots = 0
        var running: [Int: RunningJob] = [:]
        var nextRunID = 0
        /// Entry ids to acknowledge, by stream key (unprefixed).
        var acks: [String: [String]] = [:]
        var stopping = false
        var acksFinal = false
        /// The earliest time the promoter should look again (set when this worker schedules a retry).
        var promoteHint: ContinuousClock.Instant?
    }

    struct RunningJob {
        let stream: String
        let entryID: String
        let queue: QueueName
        let control: JobControl
        let deadline: ContinuousClock.Instant
        var lastExtended: ContinuousClock.Instant
    }

    /// - Throws: `QueueError.invalidConfiguration` when the configuration is inconsistent.
    public init(
        client: RedisClient, registry: JobRegistry, configuration: WorkerConfiguration,
        logger: Logger = Logger(label: "switchboard.worker")
    ) throws(QueueError) {
        try configuration.validate()
        self.client = client
        self.registry = registry
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "worker_id"] = "\(configuration.workerID)"
        self.logger = logger
        self.metrics = WorkerMetrics(queues: configuration.queues)
        state.withLock { $0.freeSlots = configuration.concurrency }
    }

    /// Jobs running now.
    public var activeJobs: Int { state.withLock { $0.running.count } }
    /// True once shutdown has begun.
    public var isDraining: Bool { state.withLock { $0.stopping } }
    public var uptime: Duration { ContinuousClock.now - startedAt }

    private var group: String { configuration.consumerGroup }
    private var consumer: String { configuration.workerID }

    // MARK: Service

    public func run() async throws {
        logger.info(
            "worker starting",
            metadata: [
                "queues": "\(configuration.queues.map(\.rawValue).joined(separator: ","))",
                "concurrency": "\(configuration.concurrency)",
            ])
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withTaskGroup(of: Void.self) { acker in
                    // Not cancelled with the worker: it flushes the acks of jobs that finish while
                    // draining, and a cancelled `WakeUp.wait` returns at once, so a cancelled ack
                    // loop would spin on a cooperative thread until `acksFinal` (starving the drain).
                    acker.addTask { await Task { await self.ackLoop() }.value }
                    await withTaskGroup(of: Void.self) { helpers in
                        helpers.addTask { await self.promoteLoop() }
                        helpers.addTask { await self.reclaimLoop() }
                        helpers.addTask { await self.watchdogLoop() }
                        await self.readLoop()
                        await self.drain()
                        helpers.cancelAll()
                    }
                    self.state.withLock { $0.acksFinal = true }
                    self.acksQueued.signal()
                }
            } onGracefulShutdown: {
                self.beginStopping()
            }
        } onCancel: {
            self.beginStopping()
        }
        logger.info("worker stopped")
    }

    /// Stops reading; running jobs get the grace period. Idempotent.
    public func beginStopping() {
        let first = state.withLock { state -> Bool in
            defer { state.stopping = true }
            return !state.stopping
        }
        if first { logger.info("worker draining", metadata: ["active_jobs": "\(activeJobs)"]) }
        slotFreed.signal()
    }

    private var stopping: Bool { state.withLock { $0.stopping } }

    // MARK: groups

    private func ensureGroups() async throws {
        for queue in configuration.queues {
            // From "0": jobs enqueued before any worker ever ran are delivered too.
            try await client.xgroupCreate(QueueKeys.stream(queue), group: group, id: "0", mkstream: true)
        }
    }

    // MARK: reading

    private func readLoop() async {
        var groupsReady = false
        var rotation = 0
        // After a sweep found nothing: the ids up to which we know everything was delivered.
        var idleMarks: [(key: String, id: String)]?
        var failures = 0
        // The last blocking read found every stream empty past what it claimed: the next one
        // needs no sweep before it, since `>` answers at once with anything added meanwhile.
        var drained = false
        while !stopping && !Task.isCancelled {
            do {
                if !groupsReady {
                    try await ensureGroups()
                    groupsReady = true
                }
                if drained {
                    drained = false
                    if case .claimed(let stillDrained) = try await waitAndClaim(configuration.queues) {
                        drained = stillDrained
                        continue
                    }
                }
                let reserved = await reserveSlots(upTo: configuration.batchSize)
                if reserved == 0 { break }
                var remaining = reserved
                // A queue that filled its read may hold more: sweep again before going idle.
                var mayHoldMore = false
                let queues = configuration.queues
                for offset in 0..<queues.count where remaining > 0 {
                    let queue = queues[(rotation + offset) % queues.count]
                    let requested = remaining
                    let batches = try await client.xreadgroup(
                        group: group, consumer: consumer, streams: [(QueueKeys.stream(queue), ">")], count: requested)
                    var read = 0
                    for batch in batches {
                        for entry in batch.entries.prefix(remaining) {
                            remaining -= 1
                            read += 1
                            start(entry, queue: queue, deliveries: 1)
                        }
                    }
                    if read >= requested { mayHoldMore = true }
                }
                rotation &+= 1
                releaseSlots(remaining)
                failures = 0
                if mayHoldMore || remaining == 0 {
                    idleMarks = nil
                    continue
                }
                // Found less than it asked for everywhere (or nothing): go idle. With more free
                // slots than served streams, one blocking XREADGROUP waits and claims in the same
                // round trip; it cannot miss what was added since the sweep (`>` is everything not
                // yet delivered) nor claim beyond the slots it holds, and leaves a free slot to the
                // reclaimer meanwhile.
                if case .claimed(let stillDrained) = try await waitAndClaim(queues) {
                    drained = stillDrained
                    idleMarks = nil
                    continue
                }
                // Fewer free slots than streams: wait without claiming. The marks are
                // followed by one more sweep before the blocking read, so nothing added in
                // between is missed; a sweep that found jobs needs no empty sweep before them.
                if remaining < reserved { idleMarks = nil }
                if let marks = idleMarks {
                    // Wakes as soon as anything is added after the marks; claims nothing itself.
                    let woken = try await client.xread(streams: marks, count: 1, block: configuration.blockTime)
                    // The next sweep starts with the queue that woke us: one read less before the job.
                    if let queue = woken.first.flatMap({ Self.queue(of: $0, in: queues) }), let index = queues.firstIndex(of: queue) {
                        rotation = index
                    }
                    idleMarks = nil
                } else {
                    idleMarks = try await lastGeneratedIDs()
                }
            } catch {
                if Task.isCancelled { break }
                if let redisError = error as? RedisError, redisError.serverErrorCode == "NOGROUP" {
                    groupsReady = false
                    continue
                }
                failures += 1
                idleMarks = nil
                drained = false
                logger.warning("read failed", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: Self.backoff(failures))
            }
        }
    }

    enum IdleRead {
        /// Not read: no more free slots than served streams.
        case skipped
        /// Read (or timed out); `drained` when no stream gave as many entries as were asked of it,
        /// so none held more at that moment.
        case claimed(drained: Bool)
    }

    /// Blocks until an entry arrives on any of `queues` (or the block time passes) and starts what
    /// came, in slots reserved for it: two per stream when that many are free, so that a job
    /// arriving alone also tells that its stream held nothing more, else one. Skipped unless more
    /// slots than streams are free: the rest stay free meanwhile, or the reclaimer could not take
    /// over a dead worker's jobs while this reader waits.
    private func waitAndClaim(_ queues: [QueueName]) async throws -> IdleRead {
        let perStream = state.withLock { state -> Int in
            guard !state.stopping, state.freeSlots > queues.count else { return 0 }
            let share = min((state.freeSlots - 1) / queues.count, 2)
            state.freeSlots -= share * queues.count
            return share
        }
        guard perStream > 0 else { return .skipped }
        let reserved = perStream * queues.count
        let batches: [StreamBatch]
        do {
            batches = try await client.xreadgroup(
                group: group, consumer: consumer, streams: queues.map { (QueueKeys.stream($0), ">") }, count: perStream,
                block: configuration.blockTime)
        } catch {
            releaseSlots(reserved)
            throw error
        }
        var started = 0
        var drained = true
        for batch in batches {
            guard let queue = Self.queue(of: batch, in: queues) else { continue }
            if batch.entries.count >= perStream { drained = false }
            for entry in batch.entries.prefix(perStream) {
                started += 1
                start(entry, queue: queue, deliveries: 1)
            }
        }
        releaseSlots(reserved - started)
        return .claimed(drained: drained)
    }

    /// The served queue a read's batch came from.
    private static func queue(of batch: StreamBatch, in queues: [QueueName]) -> QueueName? {
        queues.first { QueueKeys.stream($0) == batch.stream }
    }

    /// For each served stream, the id of the last entry ever added ("0-0" when none).
    private func lastGeneratedIDs() async throws -> [(key: String, id: String)] {
        let queues = configuration.queues
        let replies = try await client.pipeline(
            queues.map { RedisCommand("XINFO", "STREAM", client.key(QueueKeys.stream($0))) })
        return zip(queues, replies).map { queue, reply in
            var id = "$"
            if let fields = reply.array {
                var index = 0
                while index + 1 < fields.count {
                    if fields[index].string == "last-generated-id", let value = fields[index + 1].string { id = value }
                    index += 2
                }
            }
            return (QueueKeys.stream(queue), id)
        }
    }

    /// Waits for at least one free slot, then takes up to `limit`. 0 when stopping.
    private func reserveSlots(upTo limit: Int) async -> Int {
        while true {
            let taken = state.withLock { state -> Int? in
                if state.stopping { return 0 }
                guard state.freeSlots > 0 else { return nil }
                let taken = min(limit, state.freeSlots)
                state.freeSlots -= taken
                return taken
            }
            if let taken { return taken }
            if Task.isCancelled { return 0 }
            await slotFreed.wait()
        }
    }

    /// Takes up to `limit` free slots without waiting.
    private func tryReserveSlots(upTo limit: Int) -> Int {
        state.withLock { state in
            if state.stopping { return 0 }
            let taken = min(limit, state.freeSlots)
            state.freeSlots -= taken
            return taken
        }
    }

    private func releaseSlots(_ count: Int) {
        guard count > 0 else { return }
        state.withLock { $0.freeSlots += count }
        slotFreed.signal()
    }

    // MARK: running a job

    /// Starts `entry` in a slot the caller already reserved.
    private func start(_ entry: StreamEntry, queue: QueueName, deliveries: Int) {
        let stream = QueueKeys.stream(queue)
        guard let envelope = JobEnvelope(fields: entry.fields) else {
            logger.error("malformed entry moved to failed", metadata: ["queue": "\(queue)", "entry_id": "\(entry.id)"])
            releaseSlots(1)
            Task { await self.buryMalformed(entry, queue: queue) }
            return
        }
        let maxAttempts = envelope.maxAttempts > 0 ? envelope.maxAttempts : configuration.maxRetries + 1
        let attempt = envelope.attempts + deliveries
        let control = JobControl()
        let now = ContinuousClock.now
        let runID = state.withLock { state -> Int in
            state.nextRunID &+= 1
            state.running[state.nextRunID] = RunningJob(
                stream: stream, entryID: entry.id, queue: queue, control: control,
                deadline: now + configuration.jobTimeout, lastExtended: now)
            return state.nextRunID
        }
        var logger = self.logger
        // One assignment: a stream handler renders its metadata again on every change.
        logger.handler.metadata.merge(
            ["job_id": "\(envelope.id)", "job_name": "\(envelope.name)", "queue": "\(queue)", "attempt": "\(attempt)"]
        ) { _, new in new }
        let context = JobContext(
            jobID: envelope.id, queue: queue, name: envelope.name, attempt: attempt, deliveryCount: deliveries,
            maxAttempts: maxAttempts, enqueuedAt: envelope.enqueuedAt, workerID: configuration.workerID,
            logger: logger, control: control)
        let task = Task {
            await self.execute(envelope, entryID: entry.id, context: context, runID: runID)
        }
        control.attach(task)
    }

    private func execute(_ envelope: JobEnvelope, entryID: String, context: JobContext, runID: Int) async {
        defer { finish(runID) }
        let queue = context.queue
        if context.attempt > context.maxAttempts {
            // Its workers kept dying: do not hand it to yet another one.
            let error = QueueError(
                .tooManyDeliveries, "delivered \(context.deliveryCount) times; workers stopped responding while running it")
            await bury(envelope, entryID: entryID, queue: queue, attempts: context.attempt - 1, error: error, seconds: nil, logger: context.logger)
            return
        }
        let clock = ContinuousClock()
        let started = clock.now
        var failure: (any Error)?
        if let handler = registry.entry(envelope.name) {
            do {
                try await handler.run(envelope.payload, envelope.version, context)
            } catch {
                failure = error
            }
        } else {
            failure = QueueError(.unknownJob, "no handler registered for '\(envelope.name)'")
        }
        let seconds = RetryPolicy.seconds(clock.now - started)

        guard var error = failure else {
            metrics.processed(queue, seconds: seconds)
            enqueueAck(stream: QueueKeys.stream(queue), entryID: entryID)
            return
        }
        switch context.control.reason {
        case .shutdown:
            context.logger.info("job cancelled by shutdown; left pending for another worker")
            return
        case .claimLost:
            context.logger.warning("job taken over by another worker; this run is abandoned")
            return
        case .timeout:
            error = QueueError(.jobTimedOut, "ran longer than \(configuration.jobTimeout)")
        case nil:
            break
        }
        if error is any PermanentJobError || context.attempt >= context.maxAttempts {
            await bury(envelope, entryID: entryID, queue: queue, attempts: context.attempt, error: error, seconds: seconds, logger: context.logger)
        } else {
            await retry(envelope, entryID: entryID, queue: queue, attempt: context.attempt, error: error, seconds: seconds, logger: context.logger)
        }
    }

    private func finish(_ runID: Int) {
        state.withLock {
            $0.running[runID] = nil
            $0.freeSlots += 1
        }
        slotFreed.signal()
    }

    private static func describe(_ error: any Error) -> String {
        let text = (error as? QueueError)?.description ?? String(describing: error)
        return text.count > 2000 ? String(text.prefix(2000)) + "…" : text
    }

    private func retry(
        _ envelope: JobEnvelope, entryID: String, queue: QueueName, attempt: Int, error: any Error, seconds: Double,
        logger: Logger
    ) async {
        var next = envelope
        next.attempts = attempt
        next.lastError = Self.describe(error)
        let delay = configuration.retryPolicy.delay(afterAttempt: attempt)
        do {
            let member = try next.delayedMember()
            let reply = try await withRedisRetries {
                try await self.client.evalScript(
                    QueueScripts.retry, keys: [QueueKeys.stream(queue), QueueKeys.delayed(queue)],
                    args: [self.group, entryID, JobQueue.milliseconds(delay), member])
            }
            if reply.int == 1 {
                metrics.retried(queue, seconds: seconds)
                let due = ContinuousClock.now + delay
                state.withLock { state in
                    if state.promoteHint.map({ due < $0 }) ?? true { state.promoteHint = due }
                }
                logger.warning("job failed; retrying", metadata: ["error": "\(next.lastError ?? "")", "retry_in": "\(delay)"])
            }
        } catch let scriptError {
            // Left pending: the reclaimer (ours or another worker's) runs it again after the visibility timeout.
            logger.error("could not schedule retry; left pending", metadata: ["error": "\(scriptError)"])
        }
    }

    private func bury(
        _ envelope: JobEnvelope, entryID: String, queue: QueueName, attempts: Int, error: any Error, seconds: Double?,
        logger: Logger
    ) async {
        var dead = envelope
        dead.attempts = attempts
        dead.lastError = Self.describe(error)
        let fields = dead.fields + [
            (JobEnvelope.Field.queue, Array(queue.rawValue.utf8)),
            (JobEnvelope.Field.failedAt, Array(String(JobEnvelope.nowMicros()).utf8)),
        ]
        let args: [any RESPArgument] = [group, entryID] + fields.flatMap { [$0.0 as any RESPArgument, $0.1 as any RESPArgument] }
        do {
            let reply = try await withRedisRetries {
                try await self.client.evalScript(QueueScripts.bury, keys: [QueueKeys.stream(queue), QueueKeys.failed], args: args)
            }
            if reply.int == 1 {
                metrics.failed(queue, seconds: seconds)
                logger.error("job failed permanently", metadata: ["error": "\(dead.lastError ?? "")", "attempts": "\(attempts)"])
            }
        } catch let scriptError {
            logger.error("could not move job to failed; left pending", metadata: ["error": "\(scriptError)"])
        }
    }

    private func buryMalformed(_ entry: StreamEntry, queue: QueueName) async {
        let fields = entry.orderedFields.map { ($0.name, $0.value) } + [
            (JobEnvelope.Field.queue, Array(queue.rawValue.utf8)),
            (JobEnvelope.Field.lastError, Array("malformed entry (missing id, name or data)".utf8)),
            (JobEnvelope.Field.failedAt, Array(String(JobEnvelope.nowMicros()).utf8)),
        ]
        let args: [any RESPArgument] = [group, entry.id] + fields.flatMap { [$0.0 as any RESPArgument, $0.1 as any RESPArgument] }
        _ = try? await withRedisRetries {
            try await self.client.evalScript(QueueScripts.bury, keys: [QueueKeys.stream(queue), QueueKeys.failed], args: args)
        }
    }

    /// A few quick attempts for state changes that should survive a short Redis hiccup.
    private func withRedisRetries<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            do {
                return try await body()
            } catch {
                attempt += 1
                if attempt >= 3 || error is QueueError { throw error }
                try? await Task.sleep(for: .milliseconds(100 * attempt))
            }
        }
    }

    // MARK: acknowledging

    private func enqueueAck(stream: String, entryID: String) {
        state.withLock { $0.acks[stream, default: []].append(entryID) }
        acksQueued.signal()
    }

    /// Flushes acknowledgements in batches until told the worker is done and all are written
    /// (or Redis stayed unreachable for a while at the end; those entries stay pending).
    private func ackLoop() async {
        var failures = 0
        var finalDeadline: ContinuousClock.Instant?
        while true {
            await acksQueued.wait()
            while true {
                let (batch, isFinal) = state.withLock { state -> ([String: [String]], Bool) in
                    defer { state.acks = [:] }
                    return (state.acks, state.acksFinal)
                }
                if batch.isEmpty {
                    if isFinal { return }
                    break
                }
                var unsent: [String: [String]] = [:]
                for (stream, ids) in batch {
                    var index = 0
                    while index < ids.count {
                        let chunk = Array(ids[index..<min(ids.count, index + 1000)])
                        index += chunk.count
                        do {
                            _ = try await client.evalScript(QueueScripts.ack, keys: [stream], args: [group] + chunk)
                            failures = 0
                        } catch {
                            unsent[stream, default: []] += chunk
                        }
                    }
                }
                if unsent.isEmpty { continue }
                failures += 1
                state.withLock { state in
                    for (stream, ids) in unsent { state.acks[stream, default: []] += ids }
                }
                if isFinal {
                    let deadline = finalDeadline ?? ContinuousClock.now + .seconds(5)
                    finalDeadline = deadline
                    if ContinuousClock.now >= deadline {
                        logger.error("acknowledgements not written; those entries stay pending", metadata: ["count": "\(unsent.values.map(\.count).reduce(0, +))"])
                        return
                    }
                }
                logger.warning("acknowledge failed; retrying", metadata: ["failures": "\(failures)"])
                try? await Task.sleep(for: Self.backoff(failures))
            }
        }
    }

    // MARK: delayed jobs

    private func promoteLoop() async {
        var failures = 0
        while !Task.isCancelled {
            var wait = configuration.promoteInterval
            do {
                for queue in configuration.queues {
                    while true {
                        let limit = 256
                        let reply = try await client.evalScript(
                            QueueScripts.promote, keys: [QueueKeys.delayed(queue), QueueKeys.stream(queue)], args: [limit])
                        let parts = reply.array ?? []
                        let moved = Int(parts.first?.int ?? 0)
                        let nextDue = parts.count > 1 ? (parts[1].int ?? -1) : -1
                        if nextDue >= 0 { wait = min(wait, .milliseconds(nextDue)) }
                        if moved < limit { break }
                    }
                }
                failures = 0
            } catch {
                if Task.isCancelled { return }
                failures += 1
                logger.warning("promoting delayed jobs failed", metadata: ["error": "\(error)"])
                wait = Self.backoff(failures)
            }
            // Sleep in short steps so a retry scheduled here meanwhile is promoted on time.
            let until = ContinuousClock.now + max(wait, .milliseconds(2))
            while !Task.isCancelled {
                let now = ContinuousClock.now
                let hint = state.withLock { state -> ContinuousClock.Instant? in
                    defer { if let hint = state.promoteHint, hint <= now { state.promoteHint = nil } }
                    return state.promoteHint
                }
                if let hint, hint <= now { break }
                let target = min(until, hint ?? until)
                if target <= now { break }
                try? await Task.sleep(for: min(target - now, .milliseconds(50)))
            }
        }
    }

    // MARK: reclaiming

    private var reclaimInterval: Duration {
        min(max(configuration.visibilityTimeout / 2, .milliseconds(100)), .seconds(10))
    }

    private func reclaimLoop() async {
        var failures = 0
        var lastPrune = ContinuousClock.now
        while !Task.isCancelled && !stopping {
            if ContinuousClock.now - lastPrune >= .seconds(600) {
                lastPrune = ContinuousClock.now
                await pruneConsumers()
            }
            try? await Task.sleep(for: failures > 0 ? Self.backoff(failures) : reclaimInterval)
            if Task.isCancelled || stopping { return }
            do {
                for queue in configuration.queues {
                    try await reclaim(queue)
                }
                failures = 0
            } catch {
                if Task.isCancelled { return }
                failures += 1
                logger.warning("reclaim failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Consumer names of workers gone for an hour (nothing pending) are removed from the groups,
    /// so XINFO CONSUMERS does not grow with every restart.
    private func pruneConsumers() async {
        for queue in configuration.queues {
            do {
                let removed = try await client.evalScript(
                    QueueScripts.pruneConsumers, keys: [QueueKeys.stream(queue)], args: [group, 3_600_000, consumer])
                if let n = removed.int, n > 0 {
                    logger.info("removed consumers of departed workers", metadata: ["queue": "\(queue)", "count": "\(n)"])
                }
            } catch {
                logger.debug("pruning consumers failed", metadata: ["error": "\(error)"])
            }
        }
    }

    private func reclaim(_ queue: QueueName) async throws {
        let stream = QueueKeys.stream(queue)
        var cursor = "0-0"
        repeat {
            let reserved = tryReserveSlots(upTo: configuration.batchSize)
            if reserved == 0 { return }
            let claimed: (next: String, entries: [StreamEntry], deleted: [String])
            do {
                claimed = try await client.xautoclaim(
                    stream, group: group, consumer: consumer, minIdle: configuration.visibilityTimeout, start: cursor,
                    count: reserved)
            } catch {
                releaseSlots(reserved)
                throw error
            }
            cursor = claimed.next
            // Entries still running here (our extension came late), or finished and waiting for
            // their acknowledgement, are not started twice.
            let runningHere = state.withLock { state in
                Set(state.running.values.filter { $0.stream == stream }.map(\.entryID) + (state.acks[stream] ?? []))
            }
            let entries = claimed.entries.filter { !runningHere.contains($0.id) }
            releaseSlots(reserved - entries.count)
            guard !entries.isEmpty else { continue }
            var deliveries: [String: Int] = [:]
            if let first = entries.first?.id, let last = entries.last?.id {
                let pending = (try? await client.xpending(
                    stream, group: group, start: first, end: last, count: entries.count * 4 + 16, consumer: consumer)) ?? []
                for item in pending { deliveries[item.id] = item.deliveries }
            }
            metrics.reclaimed(queue, count: entries.count)
            logger.warning("reclaimed entries of an unresponsive worker", metadata: ["queue": "\(queue)", "count": "\(entries.count)"])
            for entry in entries {
                start(entry, queue: queue, deliveries: max(2, deliveries[entry.id] ?? 2))
            }
        } while cursor != "0-0" && !stopping
    }

    // MARK: watchdog (timeouts, claim extension)

    private func watchdogLoop() async {
        let tick = min(max(configuration.visibilityTimeout / 4, .milliseconds(50)), .seconds(1))
        let extendAfter = configuration.visibilityTimeout / 3
        while !Task.isCancelled {
            try? await Task.sleep(for: tick)
            if Task.isCancelled { return }
            let now = ContinuousClock.now
            let (expired, due) = state.withLock { state -> ([JobControl], [(Int, String, String)]) in
                var expired: [JobControl] = []
                var due: [(Int, String, String)] = []
                for (runID, job) in state.running {
                    if now >= job.deadline && !job.control.isStopped { expired.append(job.control) }
                    if now - job.lastExtended >= extendAfter {
                        due.append((runID, job.stream, job.entryID))
                        state.running[runID]?.lastExtended = now
                    }
                }
                return (expired, due)
            }
            for control in expired { control.stop(.timeout) }
            guard !due.isEmpty else { continue }
            for (stream, jobs) in Dictionary(grouping: due, by: { $0.1 }) {
                do {
                    let reply = try await client.evalScript(
                        QueueScripts.extend, keys: [stream], args: [group, consumer] + jobs.map { $0.2 })
                    let owned = Set((reply.array ?? []).compactMap(\.string))
                    let lost = jobs.filter { !owned.contains($0.2) }.map { $0.0 }
                    let controls = state.withLock { state in lost.compactMap { state.running[$0]?.control } }
                    for control in controls { control.stop(.claimLost) }
                } catch {
                    // Retried on the next tick; the visibility timeout leaves room for a few misses.
                    state.withLock { state in
                        for job in jobs { state.running[job.0]?.lastExtended = now - extendAfter }
                    }
                    logger.warning("extending claims failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    // MARK: draining

    private func drain() async {
        let deadline = ContinuousClock.now + configuration.gracePeriod
        while activeJobs > 0 && ContinuousClock.now < deadline && !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let leftovers = state.withLock { $0.running.values.map(\.control) }
        guard !leftovers.isEmpty else { return }
        logger.warning("grace period over; cancelling running jobs", metadata: ["count": "\(leftovers.count)"])
        for control in leftovers { control.stop(.shutdown) }
        // Handlers that honour cancellation end quickly; one that ignores it is not waited for long.
        let hardDeadline = ContinuousClock.now + .seconds(10)
        while activeJobs > 0 && ContinuousClock.now < hardDeadline {
            // Not cancellable: this wait must also work when the worker itself was cancelled.
            await Task { try? await Task.sleep(for: .milliseconds(20)) }.value
        }
    }

    static func backoff(_ failures: Int) -> Duration {
        .milliseconds(min(2000, 50 << min(failures, 6)))
    }
}

extension WorkerService {
    /// Runs this worker, and its `/health` + `/metrics` server when `healthServer` is true, until
    /// SIGTERM or SIGINT; then drains (see `WorkerConfiguration.gracePeriod`) and returns.
    /// `switchboard worker` is this; `serve` puts `self` and a `WorkerHealthServer` in its own group.
    public func runUntilTerminated(
        healthServer: Bool = true, onHealthListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws {
        var services: [any Service] = []
        if healthServer {
            services.append(WorkerHealthServer(worker: self, logger: logger, onListening: onHealthListening))
        }
        // Last in the list: shut down first, so /health reports "draining" while jobs finish.
        services.append(self)
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
