import Logging
import Synchronization

/// Graceful shutdown of `WorkerService`, after the reader stopped: running jobs get
/// `gracePeriod` to finish (and are acknowledged as usual); then the rest are cancelled and left
/// pending for another worker, and a handler that ignores cancellation is waited for at most 10 s.
extension WorkerService {
    func drain() async {
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
}
