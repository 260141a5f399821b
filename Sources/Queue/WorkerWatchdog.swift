import Logging
import Synchronization

/// The watchdog of `WorkerService`: every `visibilityTimeout / 4` (50 ms to 1 s) it cancels jobs
/// past `jobTimeout`, and extends the claim of jobs that ran a third of the visibility timeout
/// since their last extension, so a live worker's long job is never reclaimed. A job whose claim
/// another worker took over meanwhile is told to stop.
extension WorkerService {
    func watchdogLoop() async {
        let tick = min(max(configuration.visibilityTimeout / 4, .milliseconds(50)), .seconds(1))
        let extendAfter = configuration.visibilityTimeout / 3
        while !Task.isCancelled {
            try? await Task.sleep(for: tick)
            if Task.isCancelled { return }
            let now = ContinuousClock.now
            let (expired, due) = state.withLock { state -> ([JobControl], [(runID: Int, queue: QueueName, receipt: String)]) in
                var expired: [JobControl] = []
                var due: [(runID: Int, queue: QueueName, receipt: String)] = []
                for (runID, job) in state.running {
                    if now >= job.deadline && !job.control.isStopped { expired.append(job.control) }
                    if now - job.lastExtended >= extendAfter {
                        due.append((runID, job.queue, job.receipt))
                        state.running[runID]?.lastExtended = now
                    }
                }
                return (expired, due)
            }
            for control in expired { control.stop(.timeout) }
            guard !due.isEmpty else { continue }
            for (queue, jobs) in Dictionary(grouping: due, by: { $0.queue }) {
                do {
                    let owned = try await driver.extend(jobs.map { $0.receipt }, in: queue)
                    let lost = jobs.filter { !owned.contains($0.receipt) }.map { $0.runID }
                    let controls = state.withLock { state in lost.compactMap { state.running[$0]?.control } }
                    for control in controls { control.stop(.claimLost) }
                } catch {
                    // Retried on the next tick; the visibility timeout leaves room for a few misses.
                    state.withLock { state in
                        for job in jobs { state.running[job.runID]?.lastExtended = now - extendAfter }
                    }
                    logger.warning("extending claims failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}
