import AIProviders
import Foundation
import Pipeline
import RedisClient
import Storage
import SwitchboardCore
import TestSupport
import Testing

/// Every classification step decides at least once, against real MariaDB, Redis and the real
/// MiniLM embedding model (the sorter's chat answers are scripted: a 135M model sorts poorly).
@Suite(.enabled(if: LocalModelServer.enabled), .timeLimit(.minutes(30)))
struct ClassifierTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var text: String
        var attachments: [TurnAttachment] = []
        var topic: String
        var source: ClassificationSource
        var language: String? = nil
        var testDescription: String { "\(source.rawValue): \(text)" }
    }

    static let cases: [Case] = [
        Case(text: "/help", topic: "help", source: .slashCommand),
        Case(text: "/translate de Good morning, my friend", topic: "translate", source: .slashCommand, language: "de"),
        Case(text: "/summarize", topic: "summarize", source: .slashCommand),
        Case(text: "What does this say?", attachments: [TurnAttachment(name: "a.pdf", mimeType: "application/pdf", text: "x")], topic: "documents", source: .attachment),
        Case(text: "hello there", topic: "general", source: .fastPath, language: "en"),
        Case(text: "Danke schön", topic: "general", source: .fastPath, language: "de"),
        Case(text: "I want a REFUND for the order from last week", topic: "billing", source: .rule),
        Case(text: "Invoice INV-20231 shows the wrong address", topic: "billing", source: .rule),
        Case(text: "The application crashes whenever I open the settings page", topic: "tech_support", source: .embedding),
        Case(text: "Which hiking trails do you recommend near the lake?", topic: "travel", source: .embedding),
        Case(text: "Write a poem about autumn leaves falling", topic: "creative", source: .sorter, language: "en"),
        Case(text: "What is the capital of Australia, in one word", topic: "general", source: .fallback),
    ]

    /// The sorter's scripted answers: a poem request is `creative`; anything else gets nonsense.
    static let sorter = ScriptedProvider { request in
        let message = request.messages.last?.content ?? ""
        if message.contains("poem") { return .init(text: #"{"topic": "Creative", "language": "en", "web_search": false, "multi": false}"#) }
        return .init(text: "I think this is about geography!")
    }

    static func seed(_ stores: Stores, owner: Int64) async throws {
        let billing = try await stores.topics.createTopic(ownerID: nil, name: "billing", description: "payments, invoices, refunds", examples: ["I was charged twice this month", "how do I update my credit card", "send me my last invoice"])
        _ = try await stores.topics.createTopic(ownerID: nil, name: "tech_support", description: "problems with the app", examples: ["the app keeps crashing", "I get an error when I log in", "the page does not load", "my password reset email never arrives"])
        _ = try await stores.topics.createTopic(ownerID: owner, name: "travel", description: "trips and holidays", examples: ["recommend a hotel in Rome", "best beaches to visit in summer", "plan a trip to the mountains", "which train goes to Paris"])
        _ = try await stores.topics.createTopic(ownerID: nil, name: "creative", description: "poems, stories, jokes", examples: [])
        _ = try await stores.topics.createRule(topicID: billing.id, ownerID: nil, kind: .keyword, pattern: "refund", priority: 10, enabled: true)
        _ = try await stores.topics.createRule(topicID: billing.id, ownerID: nil, kind: .regex, pattern: #"\bINV-\d{4,}\b"#, priority: 5, enabled: true)
        _ = try await stores.topics.createRule(topicID: billing.id, ownerID: nil, kind: .keyword, pattern: "crashes", priority: 1, enabled: false)
    }

    @Test func everyStepDecides() async throws {
        let redis = try TestRedis.client()
        try await LocalModelServer.withProvider { real in try await TestDatabase.with { stores in
            let user = try await stores.users.createUser(email: "c@example.com", name: "C", role: .user)
            try await Self.seed(stores, owner: user.id)
            let provider = ScriptedChatRealEmbeddings(script: Self.sorter, embedder: real)
            let classifier = Classifier(provider: provider, rules: RoutingRulesCache(topics: stores.topics), redis: redis)
            for testCase in Self.cases {
                let turn = TurnInput(messageID: 1, userID: user.id, text: testCase.text, attachments: testCase.attachments)
                let (result, _) = try await classifier.classify(turn)
                #expect(result.source == testCase.source, "\(testCase.text)")
                #expect(result.topic == testCase.topic, "\(testCase.text)")
                if let language = testCase.language { #expect(result.language == language, "\(testCase.text)") }
            }
            #expect(Set(Self.cases.map(\.source)) == Set(ClassificationSource.allCases))
            // Example embeddings are cached in Redis: a second classifier embeds only the message.
            let cached = try await redis.send(RedisCommand("KEYS", redis.configuration.keyPrefix + "emb:*")).array?.count ?? 0
            #expect(cached == 11)
        } }
        await TestRedis.discard(redis)
    }

    @Test func anotherUsersTopicIsNotRoutedTo() async throws {
        try await LocalModelServer.withProvider { real in try await TestDatabase.with { stores in
            let owner = try await stores.users.createUser(email: "o@example.com", name: "O", role: .user)
            let stranger = try await stores.users.createUser(email: "s@example.com", name: "S", role: .user)
            try await Self.seed(stores, owner: owner.id)
            let classifier = Classifier(
                provider: ScriptedChatRealEmbeddings(script: Self.sorter, embedder: real),
                rules: RoutingRulesCache(topics: stores.topics), redis: nil
            )
            let text = "Which hiking trails do you recommend near the lake?"
            // The same message from the topic's owner goes to it by its examples: the embedding
            // router is up and would route it, so the stranger's answer below is the ownership rule.
            let (own, _) = try await classifier.classify(TurnInput(messageID: 1, userID: owner.id, text: text))
            #expect(own.topic == "travel")
            #expect(own.source == .embedding)
            let (result, _) = try await classifier.classify(TurnInput(messageID: 2, userID: stranger.id, text: text))
            #expect(result.topic != "travel")
        } }
    }
}

/// Rules edited in MariaDB reach every worker's cache through Redis pub/sub, without a restart.
@Suite struct RoutingRulesCacheTests {
    @Test func anAnnouncedEditReachesEveryCache() async throws {
        let redis = try TestRedis.client()
        try await TestDatabase.with { stores in
            let user = try await stores.users.createUser(email: "r@example.com", name: "R", role: .user)
            let topic = try await stores.topics.createTopic(ownerID: user.id, name: "shipping", description: "", examples: [])
            let workers = [RoutingRulesCache(topics: stores.topics, ttl: .seconds(3600)), RoutingRulesCache(topics: stores.topics, ttl: .seconds(3600))]
            for cache in workers { try await cache.start(redis: redis) }
            for cache in workers { #expect(try await cache.match("where is my parcel", ownerID: user.id) == nil) }

            _ = try await stores.topics.createRule(topicID: topic.id, ownerID: user.id, kind: .keyword, pattern: "parcel", priority: 1, enabled: true)
            // Without the announcement the caches keep their (long-lived) copy.
            for cache in workers { #expect(try await cache.match("where is my parcel", ownerID: user.id) == nil) }
            _ = try await redis.publish(TopicChanges.channel, TopicChanges.payload(ownerID: user.id))
            for cache in workers {
                var matched: CompiledRule?
                for _ in 0..<100 {
                    matched = try await cache.match("where is my parcel", ownerID: user.id)
                    if matched != nil { break }
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(matched?.topic == "shipping")
                await cache.stop()
            }
        }
        await TestRedis.discard(redis)
    }

    @Test func keywordsMatchWholeWordsIgnoringCaseAndAccents() async throws {
        try await TestDatabase.with { stores in
            let topic = try await stores.topics.createTopic(ownerID: nil, name: "cafe", description: "", examples: [])
            _ = try await stores.topics.createRule(topicID: topic.id, ownerID: nil, kind: .keyword, pattern: "café", priority: 1, enabled: true)
            _ = try await stores.topics.createRule(topicID: topic.id, ownerID: nil, kind: .regex, pattern: "([unclosed", priority: 2, enabled: true)
            let cache = RoutingRulesCache(topics: stores.topics)
            #expect(try await cache.match("Is the CAFE open?", ownerID: 1)?.topic == "cafe")
            #expect(try await cache.match("cafeteria hours", ownerID: 1) == nil)
            // The broken regex is ignored, not fatal.
            #expect(try await cache.rules(ownerID: 1).count == 1)
        }
    }
}
