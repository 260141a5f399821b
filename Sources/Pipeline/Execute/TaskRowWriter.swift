import Foundation
import Logging
import Storage
import SwitchboardCore

/// Stores a turn's task rows in order, off the path to the first token: each write is a MariaDB
/// commit (an fsync), and the rows are for `GET /messages/{id}`, not for the stream. The pipeline
/// hands the writes over and goes on; `finish()` waits until every one is stored, and the pipeline
/// calls it before it returns, so the rows are complete by the time the turn's final event is written.
final class TaskRowWriter: MessageTaskStore {
    private let store: any MessageTaskStore
    private let logger: Logger
    private let writes: AsyncStream<@Sendable () async -> Void>.Continuation
    private let drain: Task<Void, Never>

    init(store: any MessageTaskStore, logger: Logger) {
        self.store = store
        self.logger = logger
        let (stream, continuation) = AsyncStream<@Sendable () async -> Void>.makeStream()
        writes = continuation
        // Unstructured on purpose: a cancelled turn still records how far its nodes got.
        drain = Task { for await write in stream { await write() } }
    }

    /// Waits until every write handed over so far is stored; later writes are dropped.
    func finish() async {
        writes.finish()
        await drain.value
    }

    /// Queued; answers no rows (the pipeline does not read them back).
    func saveTasks(messageID: Int64, tasks: [PlannedTask]) async throws -> [MessageTask] {
        let (store, logger) = (store, logger)
        writes.yield {
            do {
                _ = try await store.saveTasks(messageID: messageID, tasks: tasks)
            } catch {
                logger.warning("task rows not saved", metadata: ["error": "\(error)"])
            }
        }
        return []
    }

    /// Queued; answers true (a failed write is logged).
    func updateTask(messageID: Int64, nodeID: String, state: MessageTask.State, output: String?, error: String?) async throws -> Bool {
        let (store, logger) = (store, logger)
        writes.yield {
            do {
                _ = try await store.updateTask(messageID: messageID, nodeID: nodeID, state: state, output: output, error: error)
            } catch let failure {
                logger.warning("task row not updated", metadata: ["node": "\(nodeID)", "error": "\(failure)"])
            }
        }
        return true
    }

    func tasks(messageID: Int64) async throws -> [MessageTask] { try await store.tasks(messageID: messageID) }
    func tasks(messageID: Int64, ownerID: Int64) async throws -> [MessageTask] { try await store.tasks(messageID: messageID, ownerID: ownerID) }
    func deleteTasks(messageID: Int64) async throws -> Int { try await store.deleteTasks(messageID: messageID) }
}
