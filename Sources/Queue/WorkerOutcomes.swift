import Logging
import SwitchboardCore
import Synchronization

/// What `WorkerService` does with a failed run: schedule the next attempt after the retry
/// policy's backoff (`retry`), or move the job to the failed jobs when it is out of attempts,
/// failed permanently, or is not a job at all (`bury`, `buryMalformed`). Each write gets a few
/// quick attempts; one that still fails leaves the job pending, and the reclaimer runs it again.
extension WorkerService {
    func retry(
        _ envelope: JobEnvelope, receipt: String, queue: QueueName, attempt: Int, error: any Error, seconds: Double,
        logger: Logger
    ) async {
        var next = envelope
        next.attempts = attempt
        next.lastError = Self.describe(error)
        let delay = configuration.retryPolicy.delay(afterAttempt: attempt)
        let driver = self.driver
        do {
            let retried = try await withStoreRetries { [next] in
                try await driver.retry(receipt, in: queue, next: next, delay: delay)
            }
            if retried {
                metrics.retried(queue, seconds: seconds)
                let due = ContinuousClock.now + delay
                state.withLock { state in
                    if state.promoteHint.map({ due < $0 }) ?? true { state.promoteHint = due }
                }
                logger.warning("job failed; retrying", metadata: ["error": "\(next.lastError ?? "")", "retry_in": "\(delay)"])
            }
        } catch let storeError {
            // Left pending: the reclaimer (ours or another worker's) runs it again after the visibility timeout.
            logger.error("could not schedule retry; left pending", metadata: ["error": "\(storeError)"])
        }
    }

    func bury(
        _ envelope: JobEnvelope, receipt: String, queue: QueueName, attempts: Int, error: any Error, seconds: Double?,
        logger: Logger
    ) async {
        var dead = envelope
        dead.attempts = attempts
        dead.lastError = Self.describe(error)
        let driver = self.driver
        do {
            let buried = try await withStoreRetries { [dead] in
                try await driver.bury(receipt, in: queue, as: dead)
            }
            if buried {
                metrics.failed(queue, seconds: seconds)
                logger.error("job failed permanently", metadata: ["error": "\(dead.lastError ?? "")", "attempts": "\(attempts)"])
            }
        } catch let storeError {
            logger.error("could not move job to failed; left pending", metadata: ["error": "\(storeError)"])
        }
    }

    func buryMalformed(_ job: DeliveredJob) async {
        let driver = self.driver
        _ = try? await withStoreRetries {
            try await driver.buryMalformed(job, reason: "malformed entry (missing id, name or data)")
        }
    }

    /// The error as stored with the job (at most 2,000 characters).
    static func describe(_ error: any Error) -> String {
        let text = (error as? QueueError)?.description ?? String(describing: error)
        return text.count > 2000 ? String(text.prefix(2000)) + "…" : text
    }

    /// A few quick attempts for state changes that should survive a short store hiccup.
    /// A `QueueError` (the job cannot be encoded) is not retried.
    private func withStoreRetries<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
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
}
