import Logging
import Synchronization

/// The acknowledger of `WorkerService`: finished jobs are queued here and acknowledged to the
/// driver in batches (per queue, up to 1,000 receipts per call). Failed writes stay queued and
/// are retried with backoff; at shutdown it writes what is left, giving up after 5 s of failures
/// (those jobs stay pending and run again elsewhere).
extension WorkerService {
    /// Most receipts acknowledged in one driver call.
    static let acknowledgeBatch = 1000

    func enqueueAck(queue: QueueName, receipt: String) {
        state.withLock { $0.acks[queue, default: []].append(receipt) }
        acksQueued.signal()
    }

    /// Flushes acknowledgements in batches until told the worker is done and all are written
    /// (or the store stayed unreachable for a while at the end; those jobs stay pending).
    func ackLoop() async {
        var failures = 0
        var finalDeadline: ContinuousClock.Instant?
        while true {
            await acksQueued.wait()
            while true {
                // Until written they are `acking`, so the reclaimer does not start them again.
                let (batch, isFinal) = state.withLock { state -> ([QueueName: [String]], Bool) in
                    defer {
                        state.acking = state.acks
                        state.acks = [:]
                    }
                    return (state.acks, state.acksFinal)
                }
                if batch.isEmpty {
                    if isFinal { return }
                    break
                }
                var unsent: [QueueName: [String]] = [:]
                for (queue, receipts) in batch {
                    var index = 0
                    while index < receipts.count {
                        let chunk = Array(receipts[index..<min(receipts.count, index + Self.acknowledgeBatch)])
                        index += chunk.count
                        do {
                            try await driver.finished(chunk, in: queue)
                            failures = 0
                        } catch {
                            unsent[queue, default: []] += chunk
                        }
                    }
                }
                state.withLock { state in
                    state.acking = [:]
                    for (queue, receipts) in unsent { state.acks[queue, default: []] += receipts }
                }
                if unsent.isEmpty { continue }
                failures += 1
                if isFinal {
                    let deadline = finalDeadline ?? ContinuousClock.now + .seconds(5)
                    finalDeadline = deadline
                    if ContinuousClock.now >= deadline {
                        logger.error(
                            "acknowledgements not written; those entries stay pending",
                            metadata: ["count": "\(unsent.values.map(\.count).reduce(0, +))"])
                        return
                    }
                }
                logger.warning("acknowledge failed; retrying", metadata: ["failures": "\(failures)"])
                try? await Task.sleep(for: Self.backoff(failures))
            }
        }
    }
}
