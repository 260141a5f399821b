import Logging
import Synchronization

/// The reclaimer of `WorkerService`: every `visibilityTimeout / 2` (at least 100 ms, at most
/// 10 s) it takes over jobs whose claim was not extended for `visibilityTimeout` (their worker is
/// presumed dead), into free slots only, and runs them with their delivery count. Every ten
/// minutes it also forgets consumers of workers gone for an hour.
extension WorkerService {
    var reclaimInterval: Duration {
        min(max(configuration.visibilityTimeout / 2, .milliseconds(100)), .seconds(10))
    }

    func reclaimLoop() async {
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

    /// Consumer names of workers gone for an hour (nothing pending) are removed, so the store's
    /// list of consumers does not grow with every restart.
    private func pruneConsumers() async {
        for queue in configuration.queues {
            do {
                let removed = try await driver.pruneIdleConsumers(of: queue, idleFor: .seconds(3600))
                if removed > 0 {
                    logger.info("removed consumers of departed workers", metadata: ["queue": "\(queue)", "count": "\(removed)"])
                }
            } catch {
                logger.debug("pruning consumers failed", metadata: ["error": "\(error)"])
            }
        }
    }

    private func reclaim(_ queue: QueueName) async throws {
        var cursor: String?
        repeat {
            let reserved = tryReserveSlots(upTo: configuration.batchSize)
            if reserved == 0 { return }
            let page: (next: String?, jobs: [DeliveredJob])
            do {
                page = try await driver.reclaim(
                    from: queue, idleFor: configuration.visibilityTimeout, cursor: cursor, limit: reserved)
            } catch {
                releaseSlots(reserved)
                throw error
            }
            cursor = page.next
            // Jobs still running here (our extension came late), or finished and waiting for
            // their acknowledgement or being acknowledged, are not started twice.
            let runningHere = state.withLock { state in
                Set(
                    state.running.values.filter { $0.queue == queue }.map(\.receipt) + (state.acks[queue] ?? [])
                        + (state.acking[queue] ?? []))
            }
            var jobs = Array(page.jobs.filter { !runningHere.contains($0.receipt) }.prefix(reserved))
            // An acknowledgement written between the takeover and the look above leaves its entry
            // pending nowhere: such a job finished and is not run again.
            let deliveries = try? await driver.deliveryCounts(of: jobs.map(\.receipt), in: queue)
            if let deliveries { jobs = jobs.filter { deliveries[$0.receipt] != nil } }
            releaseSlots(reserved - jobs.count)
            guard !jobs.isEmpty else { continue }
            metrics.reclaimed(queue, count: jobs.count)
            logger.warning("reclaimed entries of an unresponsive worker", metadata: ["queue": "\(queue)", "count": "\(jobs.count)"])
            for job in jobs {
                start(job, deliveries: max(2, deliveries?[job.receipt] ?? 2))
            }
        } while cursor != nil && !stopping
    }
}
