import Logging
import RedisClient
import ServiceLifecycle
import SwitchboardCore
import Synchronization
import UnixSignals

/// The worker runtime: drains the configured queues with `concurrency` slots, through a
/// `JobQueueDriver` (Redis Streams in production, memory in logic tests).
///
/// This file owns the worker's shared state, its construction, and the service lifecycle that
/// starts and stops its loops. The loops live next to it, one concern per file:
/// `WorkerReader` (claims jobs, never more than free slots), `WorkerSlots` (slot accounting),
/// `WorkerJobRunner` (runs a job and decides its outcome), `WorkerOutcomes` (retry with backoff,
/// bury), `WorkerAcknowledger` (batched acknowledgements), `WorkerPromoter` (due delayed jobs),
/// `WorkerReclaimer` (jobs of dead workers after the visibility timeout), `WorkerWatchdog`
/// (timeouts, claim extension) and `WorkerDrain` (graceful shutdown). Jobs are acknowledged only
/// after their handler returned. On graceful shutdown it stops reading, lets running jobs finish
/// within the grace period, then cancels them; whatever did not finish stays pending for another
/// worker.
public final class WorkerService: Service, Sendable {
    public let configuration: WorkerConfiguration
    public let metrics: WorkerMetrics
    /// Where the jobs are: the seam between this runtime and its store.
    package let driver: any JobQueueDriver
    let registry: JobRegistry
    let logger: Logger
    let startedAt = ContinuousClock.now

    let state = Mutex(State())
    /// Signalled whenever slots are freed or the worker starts stopping (the reader waits on it).
    let slotFreed = WakeUp()
    /// Signalled whenever an acknowledgement is queued, and once at the end (the acker waits on it).
    let acksQueued = WakeUp()

    struct State {
        var freeSlots = 0
        var running: [Int: RunningJob] = [:]
        var nextRunID = 0
        /// Receipts to acknowledge, by queue.
        var acks: [QueueName: [String]] = [:]
        /// Receipts whose acknowledgement is being written (taken from `acks`, not yet confirmed).
        var acking: [QueueName: [String]] = [:]
        var stopping = false
        var acksFinal = false
        /// The earliest time the promoter should look again (set when this worker schedules a retry).
        var promoteHint: ContinuousClock.Instant?
    }

    struct RunningJob {
        let queue: QueueName
        let receipt: String
        let control: JobControl
        let deadline: ContinuousClock.Instant
        var lastExtended: ContinuousClock.Instant
    }

    /// A worker on Redis Streams: consumer `configuration.workerID` of group `configuration.consumerGroup`.
    /// - Throws: `QueueError.invalidConfiguration` when the configuration is inconsistent.
    public convenience init(
        client: RedisClient, registry: JobRegistry, configuration: WorkerConfiguration,
        logger: Logger = Logger(label: "switchboard.worker")
    ) throws(QueueError) {
        try self.init(
            driver: RedisStreamsDriver(client: client, group: configuration.consumerGroup, consumer: configuration.workerID),
            registry: registry, configuration: configuration, logger: logger)
    }

    /// A worker on any driver (`MemoryJobQueueDriver` in logic tests).
    /// - Throws: `QueueError.invalidConfiguration` when the configuration is inconsistent.
    package init(
        driver: any JobQueueDriver, registry: JobRegistry, configuration: WorkerConfiguration,
        logger: Logger = Logger(label: "switchboard.worker")
    ) throws(QueueError) {
        try configuration.validate()
        self.driver = driver
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

    var stopping: Bool { state.withLock { $0.stopping } }

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

    /// Pause after `failures` consecutive failures of a loop's store calls: 100 ms doubling to 2 s.
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
