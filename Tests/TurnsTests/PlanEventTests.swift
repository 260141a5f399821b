import Foundation
import Logging
import RedisClient
import TestSupport
import Testing
import Turns

/// How the pipeline's plan reaches clients: a replaced plan says so in the `plan` event itself.
@Suite struct PlanEventTests {
    static func planEvent(fallbackReason: String?) async throws -> [String: Any] {
        var configuration = try RedisConfiguration(url: TestServices.redisURL)
        configuration.keyPrefix = "sbtest:\(UInt64.random(in: 0...UInt64.max)):"
        let redis = RedisClient(configuration: configuration, logger: Logger(label: "test"))
        func read() async throws -> [String: Any] {
            let writer = TurnStreamWriter(redis: redis, messageID: 1)
            let events = TurnEventQueue(writer: writer)
            try await events.emit(.plan(TurnPlan(nodes: [.init(id: "reply", capability: "chat", kind: "reply")], replyNode: "reply", fallbackReason: fallbackReason)))
            try await events.flush()
            let entries = try await TurnStreamReader(redis: redis).all(messageID: 1)
            #expect(entries.map(\.type) == ["plan"], "one event, no separate status")
            let first = try #require(entries.first)
            return try #require(try JSONSerialization.jsonObject(with: Data(first.data)) as? [String: Any])
        }
        let result: Result<[String: Any], any Error>
        do { result = .success(try await read()) } catch { result = .failure(error) }
        _ = try? await redis.send(RedisCommand("DEL", configuration.keyPrefix + TurnKeys.stream(1)))
        await redis.close()
        return try result.get()
    }

    @Test func aFallbackPlanCarriesFallbackAndItsReason() async throws {
        let plan = try await Self.planEvent(fallbackReason: "the plan has a cycle")
        #expect(plan["fallback"] as? Bool == true)
        #expect(plan["fallback_reason"] as? String == "the plan has a cycle")
        #expect(plan["reply_node"] as? String == "reply")
    }

    @Test func thePlannersOwnPlanHasNoFallbackFields() async throws {
        let plan = try await Self.planEvent(fallbackReason: nil)
        #expect(plan["fallback"] == nil)
        #expect(plan["fallback_reason"] == nil)
    }
}
