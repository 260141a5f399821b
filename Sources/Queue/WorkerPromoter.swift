import Logging
import Synchronization

/// The promoter of `WorkerService`: makes due delayed jobs (delayed enqueues, retries in backoff)
/// of every served queue claimable, up to 256 per call, and sleeps until the next one is due (at
/// most `promoteInterval`). A retry this worker schedules wakes it on time (`promoteHint`).
extension WorkerService {
    func promoteLoop() async {
        var failures = 0
        while !Task.isCancelled {
            var wait = configuration.promoteInterval
            do {
                for queue in configuration.queues {
                    while true {
                        let limit = 256
                        let (moved, nextDue) = try await driver.promoteDue(in: queue, limit: limit)
                        if let nextDue { wait = min(wait, nextDue) }
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
}
