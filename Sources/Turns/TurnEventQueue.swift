/// Batches a running turn's events into the turn stream: in order, pipelined, gated by the claim.
import RedisClient
import SwitchboardCore

/// Writes a running turn's non-final events in order without making the turn wait for a Redis
/// round trip per event: events queue in memory and each batch goes out in one pipeline (XADDs,
/// then one PEXPIRE). Readers see the same stream as with awaited appends, only sooner; `flush()`
/// waits until every queued event is in Redis (the final event must not overtake them). With a
/// `gate` (the turn's claim) nothing is written before it passes, so a run that loses its claim
/// to a stop request leaves no event behind that stream's final one. A write (or the gate) that
/// fails is reported by the next `append` or `flush`.
public final class TurnEventQueue: Sendable {
    public let writer: TurnStreamWriter
    /// Events queued beyond this make `append` wait for the drain (a fast producer, a slow Redis).
    let highWater: Int
    private let drain: SerialDrain<Pending>

    struct Pending: Sendable {
        var type: String
        var data: [UInt8]
    }

    public init(writer: TurnStreamWriter, highWater: Int = 512, gate: (@Sendable () async throws -> Void)? = nil) {
        self.writer = writer
        self.highWater = highWater
        // The gate is awaited before a batch is taken: the events queued while the claim commits
        // go out together, in one round trip and one wake-up of the readers.
        drain = SerialDrain(beforeBatch: gate) { batch in
            try await Self.write(batch, with: writer)
        }
    }

    /// Queues `event` (not a final one) and returns once it is queued, or written when the queue is long.
    public func append(_ event: TurnEvent) async throws {
        precondition(!event.isFinal, "final events are appended through TurnStreamWriter after flush()")
        let waiting = try drain.enqueue(Pending(type: event.type, data: try event.encodedData()))
        if waiting >= highWater { try await drain.flush() }
    }

    /// Returns when everything queued so far is in Redis; throws the failure of a write.
    public func flush() async throws { try await drain.flush() }

    private static func write(_ batch: [Pending], with writer: TurnStreamWriter) async throws {
        for reply in try await writer.redis.pipeline(writer.appendCommands(batch.map { ($0.type, $0.data) })) {
            if case .error(let message) = reply { throw RedisError.server(message) }
        }
    }
}
