import Foundation
import RedisClient
import SwitchboardCore
import Testing
import Turns

/// The event vocabulary as clients read it: names, JSON field names, and how streams end.
@Suite("Turn events")
struct TurnEventTests {
    static func json(_ event: TurnEvent) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(event.encodedData())) as? [String: Any])
    }

    @Test func everyEventRoundTripsUnderItsSSEName() throws {
        let events: [TurnEvent] = [
            .status(TurnStatus(stage: .classified, topic: "billing", language: "en", source: "rule")),
            .plan(TurnPlan(nodes: [.init(id: "a", capability: "chat", kind: "reply")], replyNode: "a", fallbackReason: "cycle")),
            .taskUpdate(TaskUpdate(nodeID: "a", state: .failed, error: "no luck")),
            .taskChunk(TaskChunk(nodeID: "a", text: "x")),
            .taskFile(TaskFile(nodeID: "a", url: "/f/1", type: "image/png")),
            .chunk("hello "),
            .complete(TurnCompletion(messageId: 7, replyId: 8, topic: "t", usage: TurnUsage(promptTokens: 3, completionTokens: 4))),
            .error(code: "cancelled", message: "stopped by the user"),
        ]
        #expect(events.map(\.type) == ["status", "plan", "task_update", "task_chunk", "task_file", "chunk", "complete", "error"])
        for event in events {
            #expect(try TurnEvent.decode(type: event.type, data: event.encodedData()) == event)
        }
        #expect(events.filter(\.isFinal).map(\.type) == ["complete", "error"])
        #expect(try TurnEvent.decode(type: "from_the_future", data: Array("{}".utf8)) == nil)
    }

    @Test func fieldNamesAreTheDocumentedSnakeCaseOnes() throws {
        let plan = try Self.json(.plan(TurnPlan(nodes: [], replyNode: "r", fallbackReason: "cycle")))
        #expect(plan["reply_node"] as? String == "r")
        #expect(plan["fallback"] as? Bool == true)
        #expect(plan["fallback_reason"] as? String == "cycle")
        let update = try Self.json(.taskUpdate(TaskUpdate(nodeID: "n", state: .done)))
        #expect(update["node_id"] as? String == "n")
        let complete = try Self.json(.complete(TurnCompletion(messageId: 1, usage: TurnUsage(promptTokens: 2, completionTokens: 3))))
        let usage = try #require(complete["usage"] as? [String: Any])
        #expect(usage["total_tokens"] as? Int == 5)
    }

    @Test func aFinishedMessageEndsItsStreamAsItsStatusSays() {
        var message = Message(
            id: 5, chatID: 1, ownerID: 1, role: .user, content: "q", status: .completed, channel: .web, createdAt: Date(), updatedAt: Date())
        message.topic = "billing"
        #expect(TurnEnding.of(finished: message, replyID: 6).event == .complete(TurnCompletion(messageId: 5, replyId: 6, topic: "billing")))
        message.status = .cancelled
        #expect(TurnEnding.of(finished: message, replyID: nil).event == .error(code: "cancelled", message: "stopped by the user"))
        message.status = .failed
        message.error = "provider down"
        #expect(TurnEnding.of(finished: message, replyID: nil).event == .error(code: "turn_failed", message: "provider down"))
        #expect(TurnEnding.deleted.event == .error(code: "message_deleted", message: "the message was deleted before its turn finished"))
        #expect(TurnEnding.queueUnavailable.event == .error(code: "queue_unavailable", message: "the turn could not be queued"))
    }

    @Test func onlyStreamEntryIDsAreAcceptedForResuming() {
        #expect(TurnStreamReader.isValidEntryID("1700000000000-0"))
        #expect(!TurnStreamReader.isValidEntryID("0"))
        #expect(!TurnStreamReader.isValidEntryID("abc-1"))
        #expect(!TurnStreamReader.isValidEntryID("1-2-3"))
        #expect(!TurnStreamReader.isValidEntryID("$"))
        #expect(!TurnStreamReader.isValidEntryID("99999999999999999999999-0"))
    }
}

/// The trace context in the turn stream: the final entry's `tp` field is read as its traceparent;
/// other entries (and every entry with tracing off) have none.
@Suite("Turn stream trace context")
struct TurnStreamTraceContextTests {
    @Test func theFinalEntryCarriesItsTraceparent() {
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let final = TurnStreamEntry(StreamEntry(id: "5-0", orderedFields: [
            ("type", Array("complete".utf8)), ("data", Array("{}".utf8)), ("final", Array("1".utf8)), ("tp", Array(traceparent.utf8)),
        ]))
        #expect(final.isFinal)
        #expect(final.traceparent == traceparent)
        let chunk = TurnStreamEntry(StreamEntry(id: "4-0", orderedFields: [("type", Array("chunk".utf8)), ("data", Array("{}".utf8))]))
        #expect(chunk.traceparent == nil)
    }
}
