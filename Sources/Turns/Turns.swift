/// Turns owns what the api and the workers share about a turn, and nothing that runs it: the
/// event vocabulary clients read (`TurnEvent`), the Redis stream that carries it
/// (`TurnStreamWriter`, `TurnStreamReader`, `TurnEventQueue`), how a stream ends (`TurnEnding`),
/// the stop flag (`TurnCancellation`), and the `turn` job that the api queues and a worker runs
/// (`TurnJob`; its handler lives with the pipeline, in `Pipeline/TurnJob`).
import Foundation
import Queue

/// The job that runs one turn: queued by the api on the `ai` queue once the message is stored.
public struct TurnJob: JobPayload, Equatable {
    public static let name = "turn"
    public var messageId: Int64

    public init(messageId: Int64) { self.messageId = messageId }
}

public enum Turns {
    /// The queue turn jobs run on.
    public static let queue: QueueName = .ai

    /// Queues the turn of a stored message, once: queuing it again while the first job is known
    /// to the queue (24 h) returns that job (see `QueuedTurnRecovery`).
    @discardableResult
    public static func enqueue(messageID: Int64, on producer: any JobProducer) async throws -> JobID {
        try await producer.enqueue(
            TurnJob(messageId: messageID), on: queue, options: EnqueueOptions(idempotencyKey: "turn:\(messageID)"))
    }

    /// The key the assistant's reply to `messageID` is stored under (one reply per turn, even when redelivered).
    public static func replyKey(for messageID: Int64) -> String { "turn-reply:\(messageID)" }
}
