import AIProviders
import Foundation
import Pipeline
import Queue
import RedisClient
import Storage
import SwitchboardApp
import Testing

/// Turns through the public API, answered by a worker running the real routing pipeline against
/// the real model server of `scripts/llm` (SmolLM2-135M for chat, all-MiniLM-L6-v2 for the
/// embedding router). Asserts the stream's shape and the router's decisions, never the words.
@Suite(
    .enabled(
        if: ProcessInfo.processInfo.environment["SB_TEST_AI_URL"] != nil,
        "SB_TEST_AI_URL is not set: no model server to run end-to-end turns against (scripts/test sets it)"),
    .serialized, .timeLimit(.minutes(10)))
struct EndToEndTests {
    static var modelServer: String { ProcessInfo.processInfo.environment["SB_TEST_AI_URL"] ?? "" }

    struct Expected: Sendable, CustomTestStringConvertible {
        var text: String
        var source: String
        var topic: String
        var testDescription: String { "\(source): \(text)" }
    }

    /// Near one topic's examples (decided by the embedding router), and two cheaper deciders.
    static let turns: [Expected] = [
        Expected(text: "The application crashes whenever I open the settings page", source: "embedding", topic: "tech_support"),
        Expected(text: "Which hiking trails do you recommend near the lake?", source: "embedding", topic: "travel"),
        Expected(text: "/help", source: "slash_command", topic: "help"),
        Expected(text: "hello there", source: "fast_path", topic: "general"),
    ]

    static func seedTopics(_ stores: Stores) async throws {
        _ = try await stores.topics.createTopic(
            ownerID: nil, name: "billing", description: "payments, invoices, refunds",
            examples: ["I was charged twice this month", "how do I update my credit card", "send me my last invoice"])
        _ = try await stores.topics.createTopic(
            ownerID: nil, name: "tech_support", description: "problems with the app",
            examples: ["the app keeps crashing", "I get an error when I log in", "the page does not load", "my password reset email never arrives"])
        _ = try await stores.topics.createTopic(
            ownerID: nil, name: "travel", description: "trips and holidays",
            examples: ["recommend a hotel in Rome", "best beaches to visit in summer", "plan a trip to the mountains", "which train goes to Paris"])
    }

    @Test func turnsThroughTheAPIStreamTheirShapeAndRouteByEmbeddings() async throws {
        let provider = try OpenAICompatibleProvider(configuration: .localModelServer(baseURL: Self.modelServer))
        let result = await capture {
            try await LiveStack.with { stack in
                try await Self.seedTopics(stack.stores)
                var configuration = PipelineConfiguration()
                configuration.maximumOutputTokens = 48  // the words do not matter; the stream's shape does
                let pipeline = RoutingPipeline(provider: provider, stores: stack.stores, redis: stack.redis, configuration: configuration, logger: LiveStack.logger)
                try await pipeline.start()
                var registry = JobRegistry()
                PipelineJobs.register(in: &registry, pipeline: pipeline, stores: stack.stores, redis: stack.redis)
                let worker = try WorkerService(
                    client: stack.redis, registry: registry,
                    configuration: WorkerConfiguration(
                        workerID: "e2e-\(UInt32.random(in: 0...UInt32.max))", queues: [.ai, .delivery], concurrency: 2, healthPort: 0,
                        blockTime: .milliseconds(200)),
                    logger: LiveStack.logger)
                let running = Task { try await worker.run() }
                let outcome = await capture {
                    for expected in Self.turns { try await Self.check(expected, stack: stack) }
                }
                worker.beginStopping()
                running.cancel()
                _ = await running.result
                await pipeline.shutdown()
                try outcome.get()
            }
        }
        try? await provider.shutdown()
        try result.get()
    }

    static func check(_ expected: Expected, stack: LiveStack) async throws {
        let (messageID, _) = try await stack.post(expected.text)
        let events = try await stack.openEvents(messageID).events(within: .seconds(180))
        let types = events.map(\.type)
        let label = "\(expected.text): \(types)"

        let stages = events.filter { $0.type == "status" }.compactMap { $0.json["stage"] as? String }
        #expect(stages.first == "started", "\(label)")
        let classified = try #require(events.first { $0.type == "status" && $0.json["stage"] as? String == "classified" }, "\(label)")
        #expect(classified.json["source"] as? String == expected.source, "\(label) \(classified.data)")
        #expect(classified.json["topic"] as? String == expected.topic, "\(label) \(classified.data)")
        let started = try #require(types.firstIndex(of: "status"))
        let classifiedAt = try #require(events.firstIndex { $0 == classified })
        let firstChunk = try #require(types.firstIndex(of: "chunk"), "no chunk: \(label)")
        #expect(started < classifiedAt && classifiedAt < firstChunk, "\(label)")
        #expect(types.filter { $0 == "complete" }.count == 1, "\(label)")
        #expect(types.last == "complete", "\(label)")
        #expect(!types.contains("error"), "\(label)")

        let complete = try #require(events.last?.json)
        #expect(complete["topic"] as? String == expected.topic, "\(label)")
        let (status, detail) = try await stack.json("GET", "/api/v1/messages/\(messageID)")
        #expect(status == 200)
        let reply = try #require(detail["reply"] as? [String: Any], "no stored reply: \(detail)")
        let content = try #require(reply["content"] as? String)
        #expect(!content.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(label)")
        #expect((reply["id"] as? NSNumber)?.int64Value == (complete["replyId"] as? NSNumber)?.int64Value)
        // The streamed chunks are the stored reply. A turn may start over (at-least-once: a
        // provider error or a reclaim on a busy machine); clients drop the text before
        // `restarted`, as docs/api.md says, and so does this check.
        let lastStart = events.lastIndex { $0.type == "status" && $0.json["stage"] as? String == "restarted" } ?? events.startIndex
        let streamed = events[lastStart...].filter { $0.type == "chunk" }.compactMap { $0.json["text"] as? String }.joined()
        #expect(streamed == content, "\(label)")
    }
}
