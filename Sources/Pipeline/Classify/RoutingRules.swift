import Foundation
import Logging
import RedisClient
import Storage
import SwitchboardCore

/// A topic rule compiled for matching.
public struct CompiledRule: Sendable {
    public var rule: RoutingRule
    public var topic: String
    let pattern: RulePattern

    init?(rule: RoutingRule, topic: String) {
        guard let pattern = try? RulePattern(kind: rule.kind, pattern: rule.pattern) else { return nil }
        self.rule = rule
        self.topic = topic
        self.pattern = pattern
    }

    func matches(original: String, folded: String) -> Bool {
        pattern.matches(original: original, folded: folded)
    }

    static func fold(_ text: String) -> String { RulePattern.fold(text) }
}

/// Topic rules and topics per owner, loaded from MariaDB on first use and kept until an edit is announced on
/// the Redis channel `TopicChanges.channel` (payload: the owner id, or `*` for global ones), or a TTL
/// passes (pub/sub is at-most-once; the TTL bounds staleness after a lost message).
public actor RoutingRulesCache {
    private let topics: any TopicStore
    private let ttl: Duration
    private let logger: Logger
    private var entries: [Int64: (rules: [CompiledRule], loaded: ContinuousClock.Instant)] = [:]
    /// The topics each owner sees (for the embedding router and the sorter): edited through the
    /// same API and announced on the same channel as rules.
    private var topicEntries: [Int64: (topics: [Topic], loaded: ContinuousClock.Instant)] = [:]
    private var listener: Task<Void, Never>?
    private var subscriber: RedisSubscriber?
    /// Loads so far (for tests and metrics).
    public private(set) var loads = 0

    public init(topics: any TopicStore, ttl: Duration = .seconds(60), logger: Logger = Logger(label: "switchboard.rules")) {
        self.topics = topics
        self.ttl = ttl
        self.logger = logger
    }

    /// Listens for rule edits announced by any process.
    public func start(redis: RedisClient) async throws {
        guard listener == nil else { return }
        let subscriber = redis.makeSubscriber()
        try await subscriber.subscribe([TopicChanges.channel])
        self.subscriber = subscriber
        listener = Task { [weak self] in
            for await message in subscriber.messages {
                await self?.invalidate(message.text)
            }
        }
    }

    public func stop() async {
        listener?.cancel()
        listener = nil
        await subscriber?.close()
        subscriber = nil
    }

    func invalidate(_ payload: String) {
        if let owner = TopicChanges.ownerID(payload: payload) {
            entries[owner] = nil
            topicEntries[owner] = nil
        } else {
            invalidateAll()
        }
    }

    /// Drops every cached rule set and topic list.
    public func invalidateAll() {
        entries.removeAll()
        topicEntries.removeAll()
    }

    /// The topics `ownerID` sees (global and own).
    public func topics(ownerID: Int64) async throws -> [Topic] {
        if let entry = topicEntries[ownerID], ContinuousClock.now - entry.loaded < ttl { return entry.topics }
        let loaded = try await topics.topics(visibleTo: ownerID)
        loads += 1
        topicEntries[ownerID] = (loaded, .now)
        return loaded
    }

    /// The enabled rules `ownerID` sees (global and own), highest priority first.
    public func rules(ownerID: Int64) async throws -> [CompiledRule] {
        if let entry = entries[ownerID], ContinuousClock.now - entry.loaded < ttl { return entry.rules }
        let loaded = try await topics.activeRules(visibleTo: ownerID)
        loads += 1
        var compiled: [CompiledRule] = []
        for (rule, topic) in loaded {
            if let rule = CompiledRule(rule: rule, topic: topic) {
                compiled.append(rule)
            } else {
                logger.warning("routing rule ignored: invalid pattern", metadata: ["rule_id": "\(rule.id)", "topic": "\(topic)"])
            }
        }
        compiled.sort { $0.rule.priority > $1.rule.priority }
        entries[ownerID] = (compiled, .now)
        return compiled
    }

    /// The first rule (by priority) that matches `text`.
    public func match(_ text: String, ownerID: Int64) async throws -> CompiledRule? {
        let rules = try await rules(ownerID: ownerID)
        let original = String(text.prefix(4000))
        let folded = CompiledRule.fold(original)
        return rules.first { $0.matches(original: original, folded: folded) }
    }
}
