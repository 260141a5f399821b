import Logging
import SwitchboardCore
import Synchronization

/// Running one job on `WorkerService`: registers it with the watchdog (deadline, claim
/// extension), runs its handler in its own task with a `JobContext`, and decides the outcome:
/// finished (queued for acknowledgement), retried, buried, or abandoned (shutdown past the grace
/// period, or another worker took it over). Its slot is freed when the run ends.
extension WorkerService {
    /// Starts `job` in a slot the caller already reserved. `deliveries`: how often the driver has
    /// handed this job out (1 for a fresh claim).
    func start(_ job: DeliveredJob, deliveries: Int) {
        guard let envelope = job.envelope else {
            logger.error("malformed entry moved to failed", metadata: ["queue": "\(job.queue)", "entry_id": "\(job.receipt)"])
            releaseSlots(1)
            Task { await self.buryMalformed(job) }
            return
        }
        let queue = job.queue
        let maxAttempts = envelope.maxAttempts > 0 ? envelope.maxAttempts : configuration.retryPolicy.maxAttempts
        let attempt = envelope.attempts + deliveries
        let control = JobControl()
        let now = ContinuousClock.now
        let runID = state.withLock { state -> Int in
            state.nextRunID &+= 1
            state.running[state.nextRunID] = RunningJob(
                queue: queue, receipt: job.receipt, control: control,
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
            await self.execute(envelope, receipt: job.receipt, context: context, runID: runID)
        }
        control.attach(task)
    }

    private func execute(_ envelope: JobEnvelope, receipt: String, context: JobContext, runID: Int) async {
        defer { finish(runID) }
        let queue = context.queue
        if context.attempt > context.maxAttempts {
            // Its workers kept dying: do not hand it to yet another one.
            let error = QueueError(
                .tooManyDeliveries, "delivered \(context.deliveryCount) times; workers stopped responding while running it")
            await bury(envelope, receipt: receipt, queue: queue, attempts: context.attempt - 1, error: error, seconds: nil, logger: context.logger)
            return
        }
        let clock = ContinuousClock()
        let started = clock.now
        var failure: (any Error)?
        if let handler = registry.entry(envelope.name) {
            do {
                try await JobTracing.run(envelope, context: context) {
                    try await handler.run(envelope.payload, envelope.version, context)
                }
            } catch {
                failure = error
            }
        } else {
            failure = QueueError(.unknownJob, "no handler registered for '\(envelope.name)'")
        }
        let seconds = (clock.now - started).inSeconds

        guard var error = failure else {
            metrics.processed(queue, seconds: seconds)
            enqueueAck(queue: queue, receipt: receipt)
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
            await bury(envelope, receipt: receipt, queue: queue, attempts: context.attempt, error: error, seconds: seconds, logger: context.logger)
        } else {
            await retry(envelope, receipt: receipt, queue: queue, attempt: context.attempt, error: error, seconds: seconds, logger: context.logger)
        }
    }

    /// The run `runID` ended: its slot is free again.
    private func finish(_ runID: Int) {
        state.withLock {
            $0.running[runID] = nil
            $0.freeSlots += 1
        }
        slotFreed.signal()
    }
}
