import Foundation
import Logging
import Storage
import Synchronization
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

    @Test func aNodeTheInsertStoredRunningGetsNoSecondRunningWrite() async throws {
        try await TestDatabase.with { stores in
            let user = try await stores.users.createUser(email: "t@example.com", name: "", role: .user)
            let chat = try await stores.chats.createChat(ownerID: user.id, title: "", channel: .web, externalThreadKey: nil)
            let message = try await stores.messages.insertMessage(NewMessage(chatID: chat.id, ownerID: user.id, content: "hello"))
            let counted = CountingTaskStore(stores.tasks)
            let rows = TaskRowWriter(store: counted, messageID: message.id, logger: Logger(label: "test"))
            try await rows.insertTasks(messageID: message.id, tasks: [
                PlannedTask(nodeID: "reply", capability: "chat", startsRunning: true),
                PlannedTask(nodeID: "after", capability: "summarize", dependsOn: ["reply"]),
            ])
            _ = try await rows.updateTask(messageID: message.id, nodeID: "reply", state: .running, output: nil, error: nil)
            // A streaming node's `done` comes long after: nothing waits to fold it into.
            try await Task.sleep(for: .milliseconds(200))
            _ = try await rows.updateTask(messageID: message.id, nodeID: "reply", state: .done, output: "hi", error: nil)
            _ = try await rows.updateTask(messageID: message.id, nodeID: "after", state: .running, output: nil, error: nil)
            await rows.finish()

            #expect(counted.updates.withLock { $0 } == ["reply:done", "after:running"], "one insert, then no `running` write for the node it started")
            let stored = try await stores.tasks.tasks(messageID: message.id)
            #expect(stored.map(\.state) == [.done, .running])
            #expect(stored[0].startedAt != nil && stored[0].finishedAt != nil && stored[0].output == "hi")
        }
    }
}

/// The real task store, recording the updates it is asked for.
private final class CountingTaskStore: MessageTaskStore {
    let base: any MessageTaskStore
    let updates = Mutex<[String]>([])
    init(_ base: any MessageTaskStore) { self.base = base }

    func updateTask(messageID: Int64, nodeID: String, state: MessageTask.State, output: String?, error: String?, started: Bool) async throws -> Bool {
        updates.withLock { $0.append("\(nodeID):\(state.rawValue)") }
        return try await base.updateTask(messageID: messageID, nodeID: nodeID, state: state, output: output, error: error, started: started)
    }
    func saveTasks(messageID: Int64, tasks: [PlannedTask]) async throws -> [MessageTask] { try await base.saveTasks(messageID: messageID, tasks: tasks) }
    func insertTasks(messageID: Int64, tasks: [PlannedTask]) async throws { try await base.insertTasks(messageID: messageID, tasks: tasks) }
    func tasks(messageID: Int64) async throws -> [MessageTask] { try await base.tasks(messageID: messageID) }
    func tasks(messageID: Int64, ownerID: Int64) async throws -> [MessageTask] { try await base.tasks(messageID: messageID, ownerID: ownerID) }
    func deleteTasks(messageID: Int64) async throws -> Int { try await base.deleteTasks(messageID: messageID) }
}
