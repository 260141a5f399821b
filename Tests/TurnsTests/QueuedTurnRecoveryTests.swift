import Foundation
import Queue
import RedisClient
import Storage
import SwitchboardCore
import Testing
import Turns

/// A message stored but never queued (the api node died in between) gets its turn queued by the
/// sweep, exactly once, and messages whose turn is queued or finished are left alone.
@Suite("Queued turn recovery")
struct QueuedTurnRecoveryTests {
    func queuedTurnIDs(_ env: TestEnvironment) async throws -> [Int64] {
        let entries = try await env.redis.xrange("queue:\(Turns.queue.rawValue)")
        return try entries.map { entry in
            let payload = try #require(entry.fields["data"])
            return try JSONDecoder().decode(TurnJob.self, from: Data(payload)).messageId
        }.sorted()
    }

    @Test func aMessageLeftQueuedGetsItsTurnQueuedOnce() async throws {
        try await TestEnvironment.with { env in
            let jobs = JobQueue(client: env.redis, logger: TestEnvironment.logger)
            let lost = try await env.queuedMessage("stored, then the api node died")
            let waiting = try await env.queuedMessage("queued normally")
            try await Turns.enqueue(messageID: waiting.id, on: jobs)
            let finished = try await env.queuedMessage("already answered")
            #expect(try await env.stores.messages.updateStatus(id: finished.id, to: .completed, error: nil, from: nil))
            #expect(try await queuedTurnIDs(env) == [waiting.id])

            // Too young: their jobs may still be on their way.
            let patient = QueuedTurnRecovery(
                messages: env.stores.messages, jobs: jobs, redis: env.redis, settings: .init(minimumAge: .seconds(60)))
            #expect(try await patient.sweep(lockFor: .milliseconds(20), logger: TestEnvironment.logger) == 0)
            #expect(try await queuedTurnIDs(env) == [waiting.id])

            try await Task.sleep(for: .milliseconds(50))  // the sweep lock runs out
            let recovery = QueuedTurnRecovery(
                messages: env.stores.messages, jobs: jobs, redis: env.redis, settings: .init(minimumAge: .zero))
            #expect(try await recovery.sweep(lockFor: .milliseconds(20), logger: TestEnvironment.logger) == 2)
            // The lost turn is queued; the waiting one was not queued a second time.
            #expect(try await queuedTurnIDs(env) == [lost.id, waiting.id].sorted())

            try await Task.sleep(for: .milliseconds(50))
            #expect(try await recovery.sweep(lockFor: .milliseconds(20), logger: TestEnvironment.logger) == 2)
            #expect(try await queuedTurnIDs(env) == [lost.id, waiting.id].sorted())
        }
    }

    @Test func oneNodeSweepsPerPeriod() async throws {
        try await TestEnvironment.with { env in
            let jobs = JobQueue(client: env.redis, logger: TestEnvironment.logger)
            let lost = try await env.queuedMessage("lost")
            let recovery = QueuedTurnRecovery(
                messages: env.stores.messages, jobs: jobs, redis: env.redis, settings: .init(minimumAge: .zero))
            async let first = recovery.sweep(lockFor: .seconds(30), logger: TestEnvironment.logger)
            async let second = recovery.sweep(lockFor: .seconds(30), logger: TestEnvironment.logger)
            let counts = try await [first, second].sorted()
            #expect(counts == [0, 1])
            #expect(try await queuedTurnIDs(env) == [lost.id])
        }
    }
}
