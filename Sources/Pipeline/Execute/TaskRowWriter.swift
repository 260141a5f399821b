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
/// write (fast nodes cost one statement, not two).
final class TaskRowWriter: MessageTaskStore {
    private enum Write {
        case insert([PlannedTask])
        case replace([PlannedTask])
        case update(nodeID: String, state: MessageTask.State, output: String?, error: String?, started: Bool)
    }

    private struct Queue {
        var writes: [Write] = []
        var draining = false
        var finished = false
        var idle: [CheckedContinuation<Void, Never>] = []
    }

    private let store: any MessageTaskStore
    private let messageID: Int64
    private let logger: Logger
    private let queue = Mutex(Queue())

    init(store: any MessageTaskStore, messageID: Int64, logger: Logger) {
        self.store = store
        self.messageID = messageID
        self.logger = logger
    }

    /// Waits until every write handed over so far is stored; later writes are dropped.
    func finish() async {
        await withCheckedContinuation { continuation in
            let done = queue.withLock { queue in
                queue.finished = true
                if !queue.draining { return true }
                queue.idle.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// Queued; answers no rows (the pipeline does not read them back).
    func saveTasks(messageID: Int64, tasks: [PlannedTask]) async throws -> [MessageTask] {
        enqueue(.replace(tasks))
        return []
    }

    /// Queued.
    func insertTasks(messageID: Int64, tasks: [PlannedTask]) async throws {
        enqueue(.insert(tasks))
    }

    /// Queued; answers true (a failed write is logged).
    func updateTask(messageID: Int64, nodeID: String, state: MessageTask.State, output: String?, error: String?, started: Bool) async throws -> Bool {
        enqueue(.update(nodeID: nodeID, state: state, output: output, error: error, started: started))
        return true
    }

    func tasks(messageID: Int64) async throws -> [MessageTask] { try await store.tasks(messageID: messageID) }
    func tasks(messageID: Int64, ownerID: Int64) async throws -> [MessageTask] { try await store.tasks(messageID: messageID, ownerID: ownerID) }
    func deleteTasks(messageID: Int64) async throws -> Int { try await store.deleteTasks(messageID: messageID) }

    private func enqueue(_ write: Write) {
        let startDrain = queue.withLock { queue -> Bool in
            guard !queue.finished else { return false }
            if case .update(let node, let state, let output, let error, _) = write, state != .running,
               let last = queue.writes.lastIndex(where: { if case .update(node, _, _, _, _) = $0 { true } else { false } }),
               case .update(_, .running, _, _, _) = queue.writes[last]
            {
                queue.writes[last] = .update(nodeID: node, state: state, output: output, error: error, started: true)
            } else {
                queue.writes.append(write)
            }
            defer { queue.draining = true }
            return !queue.draining
        }
        // Unstructured on purpose: a cancelled turn still records how far its nodes got.
        if startDrain { Task { await self.drain() } }
    }

    private func drain() async {
        while true {
            let next = queue.withLock { queue -> Write? in
                guard !queue.writes.isEmpty else { return nil }
                return queue.writes.removeFirst()
            }
            guard let next else {
                let idle = queue.withLock { queue -> [CheckedContinuation<Void, Never>]? in
                    guard queue.writes.isEmpty else { return nil }
                    queue.draining = false
                    defer { queue.idle = [] }
                    return queue.idle
                }
                guard let idle else { continue }
                for continuation in idle { continuation.resume() }
                return
            }
            await perform(next)
        }
    }

    private func perform(_ write: Write) async {
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
