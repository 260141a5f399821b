import Foundation
import Logging
import Storage
import Synchronization
import SwitchboardCore

/// Stores a turn's task rows in order, off the path to the first token: each write is a MariaDB
/// commit (an fsync), and the rows are for `GET /messages/{id}`, not for the stream. The pipeline
/// hands the writes over and goes on; `finish()` waits until every one is stored, and the pipeline
/// calls it before it returns, so the rows are complete by the time the turn's final event is written.
/// A node's `running` write still waiting when its final state arrives is folded into that one
/// write (fast nodes cost one statement, not two), and a node stored `running` by the plan's own
/// insert (`PlannedTask.startsRunning`) gets no second `running` write.
final class TaskRowWriter: MessageTaskStore {
    private enum Write: Sendable {
        case insert([PlannedTask])
        case replace([PlannedTask])
        case update(nodeID: String, state: MessageTask.State, output: String?, error: String?, started: Bool)
    }

    private let store: any MessageTaskStore
    private let drain: SerialDrain<Write>
    /// Nodes whose planned row says `running` already.
    private let startedByPlan = Mutex<Set<String>>([])

    init(store: any MessageTaskStore, messageID: Int64, logger: Logger) {
        self.store = store
        drain = SerialDrain { writes in
            for write in writes { await Self.perform(write, store: store, messageID: messageID, logger: logger) }
        }
    }

    /// Waits until every write handed over so far is stored; later writes are dropped.
    func finish() async {
        drain.close()
        try? await drain.flush()  // writes log their own failures; the drain never fails
    }

    /// Queued; answers no rows (the pipeline does not read them back).
    func saveTasks(messageID: Int64, tasks: [PlannedTask]) async throws -> [MessageTask] {
        plan(tasks)
        enqueue(.replace(tasks))
        return []
    }

    /// Queued.
    func insertTasks(messageID: Int64, tasks: [PlannedTask]) async throws {
        plan(tasks)
        enqueue(.insert(tasks))
    }

    /// Queued; answers true (a failed write is logged).
    func updateTask(messageID: Int64, nodeID: String, state: MessageTask.State, output: String?, error: String?, started: Bool) async throws -> Bool {
        if state == .running, startedByPlan.withLock({ $0.remove(nodeID) }) != nil { return true }
        enqueue(.update(nodeID: nodeID, state: state, output: output, error: error, started: started))
        return true
    }

    private func plan(_ tasks: [PlannedTask]) {
        startedByPlan.withLock { $0 = Set(tasks.filter(\.startsRunning).map(\.nodeID)) }
    }

    func tasks(messageID: Int64) async throws -> [MessageTask] { try await store.tasks(messageID: messageID) }
    func tasks(messageID: Int64, ownerID: Int64) async throws -> [MessageTask] { try await store.tasks(messageID: messageID, ownerID: ownerID) }
    func deleteTasks(messageID: Int64) async throws -> Int { try await store.deleteTasks(messageID: messageID) }

    private func enqueue(_ write: Write) {
        _ = try? drain.enqueue(write) { pending, write in
            // A final state whose `running` write is still waiting replaces it (and sets started_at).
            guard case .update(let node, let state, let output, let error, _) = write, state != .running,
                  let last = pending.lastIndex(where: { if case .update(node, _, _, _, _) = $0 { true } else { false } }),
                  case .update(_, .running, _, _, _) = pending[last]
            else { return false }
            pending[last] = .update(nodeID: node, state: state, output: output, error: error, started: true)
            return true
        }
    }

    private static func perform(_ write: Write, store: any MessageTaskStore, messageID: Int64, logger: Logger) async {
        do {
            switch write {
            case .insert(let tasks):
                try await store.insertTasks(messageID: messageID, tasks: tasks)
            case .replace(let tasks):
                _ = try await store.saveTasks(messageID: messageID, tasks: tasks)
            case .update(let nodeID, let state, let output, let error, let started):
                _ = try await store.updateTask(messageID: messageID, nodeID: nodeID, state: state, output: output, error: error, started: started)
            }
        } catch {
            logger.warning("task rows not written", metadata: ["error": "\(error)"])
        }
    }
}
