import Logging
import Synchronization

/// The reader loop of `WorkerService`: claims new jobs into free slots and starts them.
///
/// It reserves free slots, then sweeps the served queues round-robin, one queue per claim, asking
/// for no more jobs than it holds slots. A sweep in which a queue filled its claim is followed by
/// another at once. Otherwise it goes idle: with more free slots than queues one blocking claim
/// over every queue waits and claims in the same round trip (`waitAndClaim`); with fewer it waits
/// without claiming (`positions` then `waitForArrival`, with one more sweep in between so nothing
/// added meanwhile is missed). While all slots are busy nothing is read.
extension WorkerService {
    func readLoop() async {
        var prepared = false
        var rotation = 0
        // After a sweep found nothing: how far every queue had been written.
        var idleMarks: QueuePositions?
        var failures = 0
        // The last blocking claim found every queue empty past what it claimed: the next one
        // needs no sweep before it, since it answers at once with anything added meanwhile.
        var drained = false
        let queues = configuration.queues
        while !stopping && !Task.isCancelled {
            do {
                if !prepared {
                    try await driver.prepare(queues)
                    prepared = true
                }
                if drained {
                    drained = false
                    if case .claimed(let stillDrained) = try await waitAndClaim(queues) {
                        drained = stillDrained
                        continue
                    }
                }
                let reserved = await reserveSlots(upTo: configuration.batchSize)
                if reserved == 0 { break }
                let (remaining, mayHoldMore) = try await sweep(queues, rotation: rotation, slots: reserved)
                rotation &+= 1
                releaseSlots(remaining)
                failures = 0
                if mayHoldMore || remaining == 0 {
                    idleMarks = nil
                    continue
                }
                // Found less than it asked for everywhere (or nothing): go idle.
                if case .claimed(let stillDrained) = try await waitAndClaim(queues) {
                    drained = stillDrained
                    idleMarks = nil
                    continue
                }
                // Fewer free slots than queues: wait without claiming. The marks are followed by
                // one more sweep before the wait, so nothing added in between is missed; a sweep
                // that found jobs needs no empty sweep before them.
                if remaining < reserved { idleMarks = nil }
                if let marks = idleMarks {
                    let woken = try await driver.waitForArrival(after: marks, timeout: configuration.blockTime)
                    // The next sweep starts with the queue that woke us: one claim less before the job.
                    if let queue = woken, let index = queues.firstIndex(of: queue) { rotation = index }
                    idleMarks = nil
                } else {
                    idleMarks = try await driver.positions(of: queues)
                }
            } catch {
                if Task.isCancelled { break }
                failures += 1
                idleMarks = nil
                drained = false
                logger.warning("read failed", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: Self.backoff(failures))
            }
        }
    }

    /// Claims from each queue in turn, starting at `rotation`, until `slots` are used. Returns the
    /// slots left unused and whether some queue filled its claim (it may hold more). On a failed
    /// claim the unused slots are given back before the error is rethrown.
    private func sweep(_ queues: [QueueName], rotation: Int, slots: Int) async throws -> (remaining: Int, mayHoldMore: Bool) {
        var remaining = slots
        var mayHoldMore = false
        do {
            for offset in 0..<queues.count where remaining > 0 {
                let queue = queues[(rotation + offset) % queues.count]
                let requested = remaining
                let jobs = try await driver.claim(from: [queue], limitPerQueue: requested, wait: nil)
                var read = 0
                for job in jobs.prefix(remaining) {
                    remaining -= 1
                    read += 1
                    start(job, deliveries: 1)
                }
                if read >= requested { mayHoldMore = true }
            }
        } catch {
            releaseSlots(remaining)
            throw error
        }
        return (remaining, mayHoldMore)
    }

    enum IdleRead {
        /// Not read: no more free slots than served queues.
        case skipped
        /// Read (or timed out); `drained` when no queue gave as many jobs as were asked of it,
        /// so none held more at that moment.
        case claimed(drained: Bool)
    }

    /// Blocks until a job arrives on any of `queues` (or the block time passes) and starts what
    /// came, in slots reserved for it: two per queue when that many are free, so that a job
    /// arriving alone also tells that its queue held nothing more, else one. Skipped unless more
    /// slots than queues are free: the rest stay free meanwhile, or the reclaimer could not take
    /// over a dead worker's jobs while this reader waits.
    func waitAndClaim(_ queues: [QueueName]) async throws -> IdleRead {
        let perQueue = reserveSlotsPerQueue(queues.count)
        guard perQueue > 0 else { return .skipped }
        let reserved = perQueue * queues.count
        let jobs: [DeliveredJob]
        do {
            jobs = try await driver.claim(from: queues, limitPerQueue: perQueue, wait: configuration.blockTime)
        } catch {
            releaseSlots(reserved)
            throw error
        }
        var started = 0
        var startedPerQueue: [QueueName: Int] = [:]
        for job in jobs where startedPerQueue[job.queue, default: 0] < perQueue && started < reserved {
            startedPerQueue[job.queue, default: 0] += 1
            started += 1
            start(job, deliveries: 1)
        }
        releaseSlots(reserved - started)
        return .claimed(drained: startedPerQueue.values.allSatisfy { $0 < perQueue })
    }
}
