import Channels
import Foundation
import Pipeline
import Queue
import RedisClient
import Storage
import SwitchboardCore
import Testing
import TurnTestSupport
import Turns

/// A message stored but never queued (the api node died in between) gets its turn queued by the
/// sweep, exactly once, and messages whose turn is queued or finished are left alone.
@Suite("Queued turn recovery")
struct QueuedTurnRecoveryTests {
    @Test func aMessageLeftQueuedGetsItsTurnQueuedOnce() async throws {
        try await TurnTestEnvironment.with { env in
            let jobs = JobQueue(client: env.redis, logger: TurnTestEnvironment.logger)
            let lost = try await env.queuedMessage("stored, then the api node died")
            let waiting = try await env.queuedMessage("queued normally")
            try await Turns.enqueue(messageID: waiting.id, on: jobs)
            let finished = try await env.queuedMessage("already answered")
            #expect(try await env.stores.messages.updateStatus(id: finished.id, to: .completed, error: nil, from: nil))
            #expect(try await env.queuedTurnIDs() == [waiting.id])

            // Too young: their jobs may still be on their way.
            let patient = QueuedTurnRecovery(
                messages: env.stores.messages, jobs: jobs, redis: env.redis, settings: .init(minimumAge: .seconds(60)))
            #expect(try await patient.sweep(lockFor: .milliseconds(20), logger: TurnTestEnvironment.logger) == 0)
            #expect(try await env.queuedTurnIDs() == [waiting.id])

            try await Task.sleep(for: .milliseconds(50))  // the sweep lock runs out
            let recovery = QueuedTurnRecovery(
                messages: env.stores.messages, jobs: jobs, redis: env.redis, settings: .init(minimumAge: .zero))
            #expect(try await recovery.sweep(lockFor: .milliseconds(20), logger: TurnTestEnvironment.logger) == 2)
            // The lost turn is queued; the waiting one was not queued a second time.
            #expect(try await env.queuedTurnIDs() == [lost.id, waiting.id].sorted())

            try await Task.sleep(for: .milliseconds(50))
            #expect(try await recovery.sweep(lockFor: .milliseconds(20), logger: TurnTestEnvironment.logger) == 2)
            #expect(try await env.queuedTurnIDs() == [lost.id, waiting.id].sorted())
        }
    }

    /// A message waiting for its channel's hand-off (a WhatsApp media download that takes longer
    /// than the sweep's minute) is not given a turn without its file; once the hold is released
    /// (or expires) the sweep recovers it like any other.
    @Test func aHeldMessageIsLeftToItsHandOff() async throws {
        try await TurnTestEnvironment.with { env in
            let jobs = JobQueue(client: env.redis, logger: TurnTestEnvironment.logger)
            let downloading = try await env.queuedMessage("a photo, still downloading")
            let lost = try await env.queuedMessage("lost")
            let hold = TurnHold(redis: env.redis)
            try await hold.hold(messageID: downloading.id)
            let recovery = QueuedTurnRecovery(
                messages: env.stores.messages, jobs: jobs, redis: env.redis, settings: .init(minimumAge: .zero))
            #expect(try await recovery.sweep(lockFor: .milliseconds(20), logger: TurnTestEnvironment.logger) == 1)
            #expect(try await env.queuedTurnIDs() == [lost.id])

            try await hold.release(messageID: downloading.id)
            try await Task.sleep(for: .milliseconds(50))  // the sweep lock runs out
            #expect(try await recovery.sweep(lockFor: .milliseconds(20), logger: TurnTestEnvironment.logger) == 2)
            #expect(try await env.queuedTurnIDs() == [downloading.id, lost.id].sorted())

            // A hold expires: a hand-off that got lost itself is recovered in the end.
            let stranded = try await env.queuedMessage("hand-off lost")
            try await TurnHold(redis: env.redis, ttl: .milliseconds(30)).hold(messageID: stranded.id)
            try await Task.sleep(for: .milliseconds(80))
            #expect(try await recovery.sweep(lockFor: .milliseconds(20), logger: TurnTestEnvironment.logger) == 3)
            #expect(try await env.queuedTurnIDs().contains(stranded.id))
        }
    }

    @Test func oneNodeSweepsPerPeriod() async throws {
        try await TurnTestEnvironment.with { env in
            let jobs = JobQueue(client: env.redis, logger: TurnTestEnvironment.logger)
            let lost = try await env.queuedMessage("lost")
            let recovery = QueuedTurnRecovery(
                messages: env.stores.messages, jobs: jobs, redis: env.redis, settings: .init(minimumAge: .zero))
            async let first = recovery.sweep(lockFor: .seconds(30), logger: TurnTestEnvironment.logger)
            async let second = recovery.sweep(lockFor: .seconds(30), logger: TurnTestEnvironment.logger)
            let counts = try await [first, second].sorted()
            #expect(counts == [0, 1])
            #expect(try await env.queuedTurnIDs() == [lost.id])
        }
    }
}
