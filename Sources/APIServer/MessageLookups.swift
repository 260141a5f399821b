/// MessageLookups owns the idle checks of one api node's turn readers: every open SSE stream
/// (and OpenAI or webhook `wait`) that has had no event for a heartbeat asks the database whether
/// its message still exists and how it stands. One query per stream per heartbeat is 667 reads
/// a second at 10,000 idle streams on a 15 s heartbeat; here the lookups that arrive within a
/// short window become one `SELECT … WHERE id IN (…)`, so the database sees a few queries a
/// second whatever the number of open streams.
import Foundation
import Storage
import SwitchboardCore
import Synchronization

final class MessageLookups: Sendable {
    /// Where a lookup's answer goes (called once, on the task that ran the query).
    typealias Answer = @Sendable (Result<Message?, any Error>) -> Void

    private struct State {
        var waiting: [Int64: [Answer]] = [:]
        var flushScheduled = false
    }

    private let fetch: @Sendable ([Int64]) async throws -> [Message]
    /// How long a lookup may wait for others to join it.
    let window: Duration
    /// Most ids in one query; more are split.
    let maxBatch: Int
    private let state = Mutex(State())

    convenience init(messages: any MessageStore, window: Duration = .milliseconds(20), maxBatch: Int = 500) {
        self.init(window: window, maxBatch: maxBatch) { try await messages.messages(ids: $0) }
    }

    /// `fetch` reads the messages of some ids (any order, missing ones left out).
    init(window: Duration = .milliseconds(20), maxBatch: Int = 500, fetch: @escaping @Sendable ([Int64]) async throws -> [Message]) {
        self.fetch = fetch
        self.window = window
        self.maxBatch = max(1, maxBatch)
    }

    /// The message as stored now (nil when it is gone), answered together with the other
    /// lookups of the same window.
    func message(id: Int64) async throws -> Message? {
        try await withCheckedThrowingContinuation { continuation in
            message(id: id) { continuation.resume(with: $0) }
        }
    }

    /// The same, answered to `answer` instead of a waiting task: a caller on an event loop (a
    /// stream's heartbeat) starts no task of its own.
    func message(id: Int64, answer: @escaping Answer) {
        let (schedule, full) = state.withLock { state -> (Bool, Bool) in
            state.waiting[id, default: []].append(answer)
            let schedule = !state.flushScheduled
            state.flushScheduled = true
            return (schedule, state.waiting.count >= maxBatch)
        }
        if full {
            Task { await self.flush() }
        } else if schedule {
            let window = self.window
            Task {
                try? await Task.sleep(for: window)
                await self.flush()
            }
        }
    }

    /// Answers everything waiting with one query per `maxBatch` ids.
    private func flush() async {
        let batch = state.withLock { state -> [Int64: [Answer]] in
            defer {
                state.waiting = [:]
                state.flushScheduled = false
            }
            return state.waiting
        }
        guard !batch.isEmpty else { return }
        let ids = Array(batch.keys)
        for start in stride(from: 0, to: ids.count, by: maxBatch) {
            let part = Array(ids[start..<min(start + maxBatch, ids.count)])
            do {
                let found = Dictionary(try await fetch(part).map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
                for id in part { batch[id]?.forEach { $0(.success(found[id])) } }
            } catch {
                for id in part { batch[id]?.forEach { $0(.failure(error)) } }
            }
        }
    }
}
