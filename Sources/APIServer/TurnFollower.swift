/// Following one turn's stream to its end from inside a request (the OpenAI-compatible endpoint
/// and the generic webhook's `wait`): the next events as they come, and the end answered from the
/// database when the stream lost its final event.
import Foundation
import Storage
import SwitchboardCore
import Turns

struct TurnFollower: Sendable {
    let reader: TurnStreamReader
    let messages: any MessageStore
    let messageID: Int64
    /// The events after `cursor` (an entry id, "0-0" for all), waiting up to `block` for the
    /// first, and the cursor to continue from; no events when none came in time. The last event
    /// is final when the turn ended; a turn whose stream ended without its final event gets it
    /// made up from the stored message.
    func next(after cursor: String, block: Duration) async throws -> (cursor: String, events: [TurnEvent]) {
        let entries = try await reader.read(messageID: messageID, after: cursor, block: block)
        if entries.isEmpty {
            let end = try await StoredTurnEnding.lostEnding(messageID: messageID, messages: messages, reader: reader)
            return (cursor, end.map { [$0] } ?? [])
        }
        var events: [TurnEvent] = []
        var next = cursor
        for entry in entries {
            next = entry.id
            // An event this build does not know is skipped.
            guard let event = entry.event else { continue }
            events.append(event)
            if event.isFinal { break }
        }
        return (next, events)
    }

    /// The text of the reply a `complete` event names (the stored reply), or `streamed` (the
    /// chunks) when it names none.
    func replyText(_ completion: TurnCompletion, ownerID: Int64, streamed: String) async throws -> String {
        guard let replyID = completion.replyId, let reply = try await messages.message(id: replyID, ownerID: ownerID) else { return streamed }
        return reply.content
    }
}
