/// Following one turn's stream to its end from inside a request (the OpenAI-compatible endpoint
/// and the generic webhook's `wait`): the next events as the node's `TurnStreamHub` reads them,
/// and the end answered from the database when the stream lost its final event.
import Foundation
import Storage
import SwitchboardCore
import Turns

struct TurnFollower: Sendable {
    let messages: any MessageStore
    let messageID: Int64
    private let reader: TurnStreamReader
    private let lookups: MessageLookups?
    private var subscription: TurnStreamSubscription

    /// Follows `messageID` from its first event; `cancel()` when done.
    init(hub: TurnStreamHub, messages: any MessageStore, messageID: Int64) {
        self.messages = messages
        self.messageID = messageID
        reader = TurnStreamReader(redis: hub.redis)
        lookups = hub.lookups
        subscription = TurnStreamSubscription(hub: hub, reader: reader, messageID: messageID, after: "0-0")
    }

    /// The events that came since the last call, waiting up to `block` for the first; none when
    /// none came in time. The last event is final when the turn ended; a turn whose stream ended
    /// without its final event gets it made up from the stored message. Events this build does
    /// not know are skipped.
    mutating func next(block: Duration) async throws -> [TurnEvent] {
        switch try await subscription.next(timeout: block) {
        case .entries(let entries):
            return entries.compactMap(\.event)
        case .idle:
            let end = try await StoredTurnEnding.lostEnding(messageID: messageID, messages: messages, lookups: lookups, reader: reader)
            return end.map { [$0] } ?? []
        case .cutOff:
            // Nobody downstream to resume: follow again from what was taken.
            subscription.resubscribe()
            return []
        case .cancelled:
            throw CancellationError()
        }
    }

    /// Stops following (the request is answered).
    func cancel() {
        subscription.cancel()
    }

    /// The text of the reply a `complete` event names (the stored reply), or `streamed` (the
    /// chunks) when it names none.
    func replyText(_ completion: TurnCompletion, ownerID: Int64, streamed: String) async throws -> String {
        guard let replyID = completion.replyId, let reply = try await messages.message(id: replyID, ownerID: ownerID) else { return streamed }
        return reply.content
    }
}
