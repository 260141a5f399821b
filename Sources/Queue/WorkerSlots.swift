import Synchronization

/// Slot accounting of `WorkerService`: `concurrency` slots, each either free or held by a
/// running job (or reserved for a claim in flight). The reader and the reclaimer reserve slots
/// before they claim, so a worker never holds more jobs than it has slots; a job's end (or an
/// unused reservation) gives its slot back and wakes the reader.
extension WorkerService {
    /// Waits for at least one free slot, then takes up to `limit`. 0 when stopping.
    func reserveSlots(upTo limit: Int) async -> Int {
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

    /// Takes up to `limit` free slots without waiting. 0 when stopping.
    func tryReserveSlots(upTo limit: Int) -> Int {
        state.withLock { state in
            if state.stopping { return 0 }
            let taken = min(limit, state.freeSlots)
            state.freeSlots -= taken
            return taken
        }
    }

    /// For the idle read: `perQueue` slots for each of `queueCount` queues, two when more than
    /// `2 × queueCount` are free, else one; none unless more slots than queues are free (the rest
    /// stay with the reclaimer). Returns `perQueue` (0: nothing reserved).
    func reserveSlotsPerQueue(_ queueCount: Int) -> Int {
        state.withLock { state -> Int in
            guard !state.stopping, state.freeSlots > queueCount else { return 0 }
            let share = min((state.freeSlots - 1) / queueCount, 2)
            state.freeSlots -= share * queueCount
            return share
        }
    }

    /// Gives back reserved slots that no job took.
    func releaseSlots(_ count: Int) {
        guard count > 0 else { return }
        state.withLock { $0.freeSlots += count }
        slotFreed.signal()
    }
}
