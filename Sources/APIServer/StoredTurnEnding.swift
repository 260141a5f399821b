/// A turn's end as the database tells it, for the api's readers of turn streams (SSE, the
/// OpenAI-compatible endpoint, the generic webhook's `wait`): when a stream lost its final event
/// (or expired), or the message was deleted, the end is made up from the stored message.
import Foundation
import Storage
import SwitchboardCore
import Turns

enum StoredTurnEnding {
    /// How old a finished message must be before a stream without its final event is presumed lost.
    static let lostFinalGrace: TimeInterval = 10

    /// The final event of `messageID` from the database: its ending as stored, or
    /// `message_deleted` when it is gone.
    static func event(messageID: Int64, messages: any MessageStore) async throws -> TurnEvent {
        try await event(of: try await messages.message(id: messageID), messageID: messageID, messages: messages)
    }

    /// What a reader that has waited a while without events should end with: nil while the turn
    /// may still write (it is running, or its final event is in the stream); the made-up final
    /// event when the message was deleted, or finished more than `lostFinalGrace` ago without a
    /// final event in its stream.
    /// `lookups` batches the database read with the other idle viewers' of this node.
    static func lostEnding(
        messageID: Int64, messages: any MessageStore, lookups: MessageLookups?, reader: TurnStreamReader
    ) async throws -> TurnEvent? {
        let current: Message?
        if let lookups {
            current = try await lookups.message(id: messageID)
        } else {
            current = try await messages.message(id: messageID)
        }
        return try await lostEnding(of: current, messageID: messageID, messages: messages, reader: reader)
    }

    /// The same, for a message already read as `current` (nil: gone).
    static func lostEnding(
        of current: Message?, messageID: Int64, messages: any MessageStore, reader: TurnStreamReader
    ) async throws -> TurnEvent? {
        guard mayHaveEnded(current), try await reader.last(messageID: messageID)?.isFinal != true else { return nil }
        return try await event(of: current, messageID: messageID, messages: messages)
    }

    /// False while the stored message says its turn may still write (it exists, and is not
    /// final or finished within `lostFinalGrace`): then the stream need not be looked at.
    static func mayHaveEnded(_ current: Message?) -> Bool {
        current.map { $0.status.isFinal && Date().timeIntervalSince($0.updatedAt) > lostFinalGrace } ?? true
    }

    private static func event(of message: Message?, messageID: Int64, messages: any MessageStore) async throws -> TurnEvent {
        guard let message else { return TurnEnding.deleted.event }
        let reply = try await messages.message(ownerID: message.ownerID, idempotencyKey: Turns.replyKey(for: messageID))
        return TurnEnding.of(finished: message, replyID: reply?.id).event
    }
}
