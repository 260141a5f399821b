import Synchronization

/// Hands work to a background writer that processes it in order, one batch at a time, so the
/// caller goes on instead of waiting for each write (a turn's stream events, its task rows).
/// `flush()` returns once everything enqueued so far is processed. A batch that throws makes the
/// drain stop: the error is reported by `flush()` and by every later `enqueue`.
public final class SerialDrain<Item: Sendable>: Sendable {
    private struct State {
        var pending: [Item] = []
        var draining = false
        var closed = false
        var failure: (any Error)?
        var waiters: [CheckedContinuation<Void, any Error>] = []
    }

    private let state = Mutex(State())
    private let beforeBatch: (@Sendable () async throws -> Void)?
    private let process: @Sendable ([Item]) async throws -> Void

    /// `process` gets every item enqueued while the previous batch ran, oldest first.
    /// `beforeBatch` runs before each batch is taken, so what is enqueued while it waits goes
    /// into that batch; when it throws, the pending items are dropped as when a batch fails.
    public init(
        beforeBatch: (@Sendable () async throws -> Void)? = nil, process: @escaping @Sendable ([Item]) async throws -> Void
    ) {
        self.beforeBatch = beforeBatch
        self.process = process
    }

    /// Queues `item`; returns how many items wait (for callers that bound the queue).
    /// `coalesce` may fold it into what is still pending instead (return true when it did).
    /// Items enqueued after `close()` are dropped.
    @discardableResult
    public func enqueue(_ item: Item, coalesce: ((inout [Item], Item) -> Bool)? = nil) throws -> Int {
        let (start, count) = try state.withLock { state -> (Bool, Int) in
            if let failure = state.failure { throw failure }
            guard !state.closed else { return (false, state.pending.count) }
            if coalesce?(&state.pending, item) != true { state.pending.append(item) }
            defer { state.draining = true }
            return (!state.draining, state.pending.count)
        }
        // Unstructured on purpose: what was handed over is written even if the caller is cancelled.
        if start { Task { await self.drain() } }
        return count
    }

    /// Returns when everything enqueued so far is processed; throws the failure of a batch.
    public func flush() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let outcome = state.withLock { state -> Result<Void, any Error>? in
                if let failure = state.failure { return .failure(failure) }
                if !state.draining { return .success(()) }
                state.waiters.append(continuation)
                return nil
            }
            if let outcome { continuation.resume(with: outcome) }
        }
    }

    /// Drops later items; what is already queued is still processed.
    public func close() {
        state.withLock { $0.closed = true }
    }

    private func drain() async {
        while true {
            var failure: (any Error)?
            do {
                try await beforeBatch?()
            } catch {
                failure = error
            }
            let batch = state.withLock { state -> [Item] in
                defer { state.pending.removeAll(keepingCapacity: true) }
                return state.pending
            }
            if failure == nil, !batch.isEmpty {
                do {
                    try await process(batch)
                    continue
                } catch {
                    failure = error
                }
            }
            let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>]? in
                if failure == nil, !state.pending.isEmpty { return nil }  // queued meanwhile: go on
                state.failure = failure
                state.pending = []
                state.draining = false
                defer { state.waiters = [] }
                return state.waiters
            }
            guard let waiters else { continue }
            for waiter in waiters {
                if let failure { waiter.resume(throwing: failure) } else { waiter.resume() }
            }
            return
        }
    }
}
