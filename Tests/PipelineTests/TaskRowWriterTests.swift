import Foundation
import Logging
import Storage
import SwitchboardCore
import Testing

@testable import Pipeline

/// Task rows written behind the turn: in order, complete once `finish()` returns, and a node that
/// finished before its `running` row was written still shows when it started.
@Suite struct TaskRowWriterTests {
    @Test func rowsAreCompleteAfterFinishAndAFastNodeKeepsItsStartTime() async throws {
        try await TestDatabase.with { stores in
            let user = try await stores.users.createUser(email: "t@example.com", name: "", role: .user)
            let chat = try await stores.chats.createChat(ownerID: user.id, title: "", channel: .web, externalThreadKey: nil)
            let message = try await stores.messages.insertMessage(NewMessage(chatID: chat.id, ownerID: user.id, content: "two things"))
            let rows = TaskRowWriter(store: stores.tasks, messageID: message.id, logger: Logger(label: "test"))
            try await rows.insertTasks(messageID: message.id, tasks: [
                PlannedTask(nodeID: "a", capability: "summarize"), PlannedTask(nodeID: "b", capability: "translate"),
                PlannedTask(nodeID: "reply", capability: "compose_reply", dependsOn: ["a", "b"]),
            ])
            // Handed over at once, as a graph of instant nodes does.
            _ = try await rows.updateTask(messageID: message.id, nodeID: "a", state: .running, output: nil, error: nil)
            _ = try await rows.updateTask(messageID: message.id, nodeID: "b", state: .running, output: nil, error: nil)
            _ = try await rows.updateTask(messageID: message.id, nodeID: "a", state: .done, output: "short", error: nil)
            _ = try await rows.updateTask(messageID: message.id, nodeID: "b", state: .failed, output: nil, error: "timeout")
            _ = try await rows.updateTask(messageID: message.id, nodeID: "reply", state: .skipped, output: nil, error: nil)
            await rows.finish()

            let stored = try await stores.tasks.tasks(messageID: message.id)
            #expect(stored.map(\.nodeID) == ["a", "b", "reply"])
            #expect(stored.map(\.state) == [.done, .failed, .skipped])
            #expect(stored[0].output == "short")
            #expect(stored[1].error == "timeout")
            #expect(stored[0].startedAt != nil && stored[0].finishedAt != nil)
            #expect(stored[1].startedAt != nil && stored[1].finishedAt != nil)
            #expect(stored[2].startedAt == nil && stored[2].finishedAt != nil, "a skipped node never started")

            // Nothing is written after finish.
            _ = try await rows.updateTask(messageID: message.id, nodeID: "reply", state: .done, output: "late", error: nil)
            try await Task.sleep(for: .milliseconds(50))
            #expect(try await stores.tasks.tasks(messageID: message.id)[2].state == .skipped)
        }
    }
}
