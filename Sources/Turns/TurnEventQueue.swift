import RedisClient
import Synchronization

/// Writes a running turn's non-final events in order without making the turn wait for a Redis
/// round trip per event: events queue in memory and one drain at a time sends everything queued
/// in a single pipeline (XADDs, then one PEXPIRE). Readers see the same stream as with awaited
/// appends, only sooner; `flush()` waits until every queued event is in Redis (the final event
/// must not overtake them). A write that fails is reported by the next `append` or `flush`.
public final class TurnEventQueue: Sendable {
    public let writer: TurnStreamWriter
    /// Events queued beyond this make `append` wait for the drain (a fast producer, a slow Redis).
    let highWater: Int

    private struct Pending {
        var type: String
        var data: [UInt8]
    }

    private struct State {
        var pending: [Pending] = []
        var draining = false
        var failure: (any Error)?
        var waiters: [CheckedContinuation<Void, any Error>] = []
    }

    private let state = Mutex(State())

    public init(writer: TurnStreamWriter, highWater: Int = 512) {
        self.writer = writer
        self.highWater = highWater
    }

    /// Queues `event` (not a final one) and returns once it is queued, or written when the queue is long.
    public func append(_ event: TurnEvent) async throws {
        precondition(!event.isFinal, "final events are appended through TurnStreamWriter after flush()")
        let item = Pending(type: event.type, data: try event.encodedData())
        let (startDrain, mustWait) = try state.withLock { state -> (Bool, Bool) in
            if let failure = state.failure { throw failure }
            state.pending.append(item)
            let start = !state.draining
            state.draining = true
            return (start, state.pending.count >= highWater)
        }
        if startDrain { Task { await self.drain() } }
        if mustWait { try await flush() }
    }

    /// Returns when everything queued so far is in Redis; throws the failure of a write.
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

    private func drain() async {
        let key = writer.redis.key(TurnKeys.stream(writer.messageID))
        let settings = writer.settings
        while true {
            let batch = state.withLock { state -> [Pending] in
                let batch = state.pending
                state.pending.removeAll(keepingCapacity: true)
                return batch
            }
            if batch.isEmpty {
                let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>]? in
                    guard state.pending.isEmpty else { return nil }  // queued between the two locks
                    state.draining = false
                    defer { state.waiters = [] }
                    return state.waiters
                }
                guard let waiters else { continue }
                for waiter in waiters { waiter.resume() }
                return
            }
            var commands = batch.map { item in
                RedisClient.xaddCommand(key, fields: [("type", item.type), ("data", item.data)], maxLength: .approximately(settings.maxLength))
            }
            commands.append(RedisCommand("PEXPIRE", key, TurnStreamWriter.milliseconds(settings.ttl)))
            do {
                let replies = try await writer.redis.pipeline(commands)
                if let error = replies.lazy.compactMap({ reply -> String? in
                    if case .error(let message) = reply { return message }
                    return nil
                }).first {
                    throw RedisError.server(error)
                }
            } catch {
                let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
                    state.failure = error
                    state.pending = []
                    state.draining = false
                    defer { state.waiters = [] }
                    return state.waiters
                }
                for waiter in waiters { waiter.resume(throwing: error) }
                return
            }
        }
    }
}
