import Foundation
import SwitchboardCore

/// Topics and their routing rules. `ownerID` nil means the global topics (administration); a user
/// sees global topics and their own, and changes only their own.
public struct MariaDBTopicStore: TopicStore {
    let database: Database

    public init(database: Database) { self.database = database }

    public func createTopic(ownerID: Int64?, name: String, description: String, examples: [String]) async throws -> Topic {
        let now = Date.databaseNow()
        let result = try await database.execute(
            "INSERT INTO topics (user_id, name, description, examples, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            [.optional(ownerID), .string(name), .string(description), try jsonValue(examples), .date(now), .date(now)])
        return Topic(
            id: result.lastInsertID, ownerID: ownerID, name: name, description: description, examples: examples, createdAt: now,
            updatedAt: now)
    }

    public func topic(id: Int64, visibleTo ownerID: Int64?) async throws -> Topic? {
        try await database.queryFirst(
            "SELECT \(Topic.columns) FROM topics WHERE id = ? AND (user_id IS NULL OR user_id = ?)", [.int(id), .optional(ownerID)]
        ).map(Topic.init(row:))
    }

    public func topics(visibleTo ownerID: Int64?) async throws -> [Topic] {
        try await database.query(
            "SELECT \(Topic.columns) FROM topics WHERE user_id IS NULL OR user_id = ? ORDER BY name, id", [.optional(ownerID)]
        ).map(Topic.init(row:))
    }

    public func updateTopic(
        id: Int64, ownerID: Int64?, name: String?, description: String?, examples: [String]?
    ) async throws -> Topic? {
        let changed = try await database.execute(
            """
            UPDATE topics SET name = COALESCE(?, name), description = COALESCE(?, description),
                examples = COALESCE(?, examples), updated_at = ?
            WHERE id = ? AND user_id <=> ?
            """,
            [.optional(name), .optional(description), try examples.map(jsonValue) ?? .null, .date(.databaseNow()), .int(id),
             .optional(ownerID)])
        guard changed.affectedRows > 0 else { return nil }
        return try await database.queryFirst("SELECT \(Topic.columns) FROM topics WHERE id = ?", [.int(id)]).map(Topic.init(row:))
    }

    public func deleteTopic(id: Int64, ownerID: Int64?) async throws -> Bool {
        try await database.execute("DELETE FROM topics WHERE id = ? AND user_id <=> ?", [.int(id), .optional(ownerID)]).affectedRows > 0
    }

    public func createRule(
        topicID: Int64, ownerID: Int64?, kind: RoutingRule.Kind, pattern: String, priority: Int, enabled: Bool
    ) async throws -> RoutingRule? {
        let now = Date.databaseNow()
        // INSERT … SELECT inserts nothing unless the topic is the owner's.
        let result = try await database.execute(
            """
            INSERT INTO routing_rules (topic_id, kind, pattern, priority, enabled, created_at, updated_at)
            SELECT id, ?, ?, ?, ?, ?, ? FROM topics WHERE id = ? AND user_id <=> ?
            """,
            [.string(kind.rawValue), .string(pattern), .int(priority), .bool(enabled), .date(now), .date(now), .int(topicID),
             .optional(ownerID)])
        guard result.affectedRows > 0 else { return nil }
        return RoutingRule(
            id: result.lastInsertID, topicID: topicID, kind: kind, pattern: pattern, priority: priority, enabled: enabled,
            createdAt: now, updatedAt: now)
    }

    public func ruleCount(ownerID: Int64?) async throws -> Int {
        let row = try await database.queryFirst(
            "SELECT COUNT(*) AS n FROM routing_rules r JOIN topics t ON t.id = r.topic_id WHERE t.user_id <=> ?", [.optional(ownerID)])
        return Int(try row?.int("n") ?? 0)
    }

    public func rules(topicID: Int64, visibleTo ownerID: Int64?) async throws -> [RoutingRule] {
        try await database.query(
            """
            SELECT \(prefixed("r", RoutingRule.columns)) FROM routing_rules r JOIN topics t ON t.id = r.topic_id
            WHERE r.topic_id = ? AND (t.user_id IS NULL OR t.user_id = ?) ORDER BY r.priority DESC, r.id
            """,
            [.int(topicID), .optional(ownerID)]
        ).map(RoutingRule.init(row:))
    }

    public func activeRules(visibleTo ownerID: Int64?) async throws -> [(rule: RoutingRule, topic: String)] {
        let rows = try await database.query(
            """
            SELECT \(prefixed("r", RoutingRule.columns)), t.name AS topic_name FROM routing_rules r JOIN topics t ON t.id = r.topic_id
            WHERE r.enabled = 1 AND (t.user_id IS NULL OR t.user_id = ?) ORDER BY r.priority DESC, r.id
            """,
            [.optional(ownerID)])
        var rules: [(rule: RoutingRule, topic: String)] = []
        for row in rows {
            let rule = try RoutingRule(row: row)
            rules.append((rule, try row.string("topic_name")))
        }
        return rules
    }

    public func updateRule(id: Int64, ownerID: Int64?, pattern: String?, priority: Int?, enabled: Bool?) async throws -> Bool {
        try await database.execute(
            """
            UPDATE routing_rules r JOIN topics t ON t.id = r.topic_id
            SET r.pattern = COALESCE(?, r.pattern), r.priority = COALESCE(?, r.priority), r.enabled = COALESCE(?, r.enabled),
                r.updated_at = ?
            WHERE r.id = ? AND t.user_id <=> ?
            """,
            [.optional(pattern), priority.map { .int($0) } ?? .null, enabled.map { .bool($0) } ?? .null, .date(.databaseNow()),
             .int(id), .optional(ownerID)]
        ).affectedRows > 0
    }

    public func deleteRule(id: Int64, ownerID: Int64?) async throws -> Bool {
        try await database.execute(
            "DELETE r FROM routing_rules r JOIN topics t ON t.id = r.topic_id WHERE r.id = ? AND t.user_id <=> ?",
            [.int(id), .optional(ownerID)]
        ).affectedRows > 0
    }
}
