import Foundation
import RedisClient
import Testing
@testable import TurnTestSupport
import Turns

@Suite("Turn stream")
struct TurnStreamTests {
    @Test func eventsRoundTripThroughTheStreamAndTheFinalOneIsWrittenOnce() async throws {
        try await TurnTestEnvironment.with { env in
            let writer = TurnStreamWriter(redis: env.redis, messageID: 7, settings: TurnStreamSettings(maxLength: 100, ttl: .seconds(60)))
            let events: [TurnEvent] = [
                .status(.started),
                .plan(TurnPlan(nodes: [.init(id: "a", capability: "chat", kind: "reply")], replyNode: "a")),
                .taskUpdate(TaskUpdate(nodeID: "a", state: .running)),
                .taskChunk(TaskChunk(nodeID: "a", text: "x")),
                .taskFile(TaskFile(nodeID: "a", url: "/f/1", type: "text/plain")),
                .chunk("hello\nworld"),
                .complete(TurnCompletion(messageId: 7, usage: TurnUsage(promptTokens: 1, completionTokens: 2))),
            ]
            var ids: [String] = []
            for event in events { ids.append(try #require(try await writer.append(event))) }
            // Nothing is appended after the end.
            #expect(try await writer.append(.error(code: "late", message: "too late")) == nil)

            let reader = TurnStreamReader(redis: env.redis)
            let all = try await reader.all(messageID: 7)
            #expect(all.map(\.id) == ids)
            #expect(all.compactMap(\.event) == events)
            #expect(all.map(\.isFinal) == events.map(\.isFinal))
            // Reading after an id gives exactly what follows it.
            let rest = try await reader.read(messageID: 7, after: ids[3], block: nil)
            #expect(rest.map(\.id) == Array(ids[4...]))
            #expect(try await reader.last(messageID: 7)?.type == "complete")
            let ttl = try await env.redis.ttl(TurnKeys.stream(7))
            #expect(ttl > 0 && ttl <= 60)
            // The usage carries its total.
            let complete = String(decoding: all.last!.data, as: UTF8.self)
            #expect(complete.contains("\"total_tokens\":3"))
        }
    }

    @Test func aBlockingReadWaitsForTheNextEvent() async throws {
        try await TurnTestEnvironment.with { env in
            let reader = TurnStreamReader(redis: env.redis)
            #expect(try await reader.read(messageID: 9, after: "0-0", block: .milliseconds(50)).isEmpty)
            async let read = reader.read(messageID: 9, after: "0-0", block: .seconds(5))
            try await Task.sleep(for: .milliseconds(100))
            try await TurnStreamWriter(redis: env.redis, messageID: 9).append(.chunk("hi"))
            #expect(try await read.map(\.type) == ["chunk"])
        }
    }
}

/// How a running turn writes its events: queued in order without a round trip each, content only
/// once the turn owns its message.
@Suite("Turn event queue")
struct TurnEventQueueTests {
    @Test func queuedEventsReachTheStreamInOrder() async throws {
        try await TurnTestEnvironment.with { env in
            // A small high-water mark makes appends wait for the drain part of the time.
            let queue = TurnEventQueue(writer: TurnStreamWriter(redis: env.redis, messageID: 11), highWater: 16)
            let events = (0..<300).map { TurnEvent.chunk(TextChunk(text: "\($0) ")) }
            for event in events { try await queue.append(event) }
            try await queue.flush()
            #expect(try await TurnStreamReader(redis: env.redis).all(messageID: 11).compactMap(\.event) == events)
            let ttl = try await env.redis.ttl(TurnKeys.stream(11))
            #expect(ttl > 0)
        }
    }

    @Test func aFailedWriteIsReportedByFlushAndTheNextAppend() async throws {
        // Nothing listens on port 1: every write fails.
        let configuration = try RedisConfiguration(url: "redis://127.0.0.1:1/0")
        let redis = RedisClient(configuration: configuration, logger: TurnTestEnvironment.logger)
        let queue = TurnEventQueue(writer: TurnStreamWriter(redis: redis, messageID: 1))
        try await queue.append(.status(.classifying))
        await #expect(throws: (any Error).self) { try await queue.flush() }
        await #expect(throws: (any Error).self) { try await queue.append(.chunk(TextChunk(text: "x"))) }
        await redis.close()
    }

    @Test func eventsWaitForTheClaimAndAreDroppedWhenItIsLost() async throws {
        try await TurnTestEnvironment.with { env in
            // A stop request won the race: the stream already ended, and the run that lost its
            // claim must not add anything after that end.
            let writer = TurnStreamWriter(redis: env.redis, messageID: 12)
            try await writer.append(.error(code: "cancelled", message: "stopped by the user"))
            struct ClaimLost: Error {}
            let lost = Task {
                try await Task.sleep(for: .milliseconds(50))  // the commit takes a while, then changes nothing
                return false
            }
            let events = TurnEventQueue(writer: writer, gate: { guard try await lost.value else { throw ClaimLost() } })
            try await events.append(.status(.started))
            try await events.append(.chunk("never shown"))
            await #expect(throws: ClaimLost.self) { try await events.flush() }
            await #expect(throws: ClaimLost.self) { try await events.append(.chunk("nor this")) }
            #expect(try await TurnStreamReader(redis: env.redis).all(messageID: 12).map(\.type) == ["error"])

            // A claim that commits later: the events wait for it, then all go out in order. It
            // commits when the test says so (a timed commit raced the check on a busy machine).
            let (commit, committing) = AsyncStream<Bool>.makeStream()
            let owned = Task {
                for await owned in commit { return owned }
                return false
            }
            let later = TurnEventQueue(writer: TurnStreamWriter(redis: env.redis, messageID: 13), gate: { guard try await owned.value else { throw ClaimLost() } })
            try await later.append(.status(.started))
            try await later.append(.chunk("shown"))
            #expect(try await TurnStreamReader(redis: env.redis).all(messageID: 13).isEmpty, "nothing before the claim commits")
            committing.yield(true)
            try await later.flush()
            #expect(try await TurnStreamReader(redis: env.redis).all(messageID: 13).map(\.type) == ["status", "chunk"])
        }
    }
}
