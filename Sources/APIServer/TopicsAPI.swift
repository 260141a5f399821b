import Foundation
import Hummingbird
import RedisClient
import Storage
import SwitchboardCore

/// `/api/v1/topics`: the topics the classifier routes to, their example phrases (the embedding
/// router) and their keyword and regex rules. A user sees the global topics and their own, and
/// edits their own; only admins edit global ones. Every edit is announced on Redis, so every
/// worker applies it to its next turn without a restart.
struct TopicsAPI: Sendable {
    let dependencies: APIDependencies
    var settings: APISettings { dependencies.settings }
    var topics: any TopicStore { dependencies.stores.topics }
    /// For the path and query helpers every route shares.
    var api: PublicAPI { PublicAPI(dependencies: dependencies) }

    // Lengths count Unicode code points, as MariaDB's VARCHAR columns do (a Swift Character may
    // hold several: an emoji with a skin-tone modifier is one Character and two code points).
    static let maxNameCharacters = 100
    static let maxDescriptionCharacters = 2000
    static let maxExamples = 200
    static let maxExampleCharacters = 500
    static let maxPatternCharacters = 1000
    /// Rules one user's topics may hold (each runs on every one of that user's messages).
    static let maxRulesPerOwner = 500
    static let priorities = -1000...1000

    // MARK: - Topics

    func list(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let visible = try await topics.topics(visibleTo: caller.user.id)
        return try APIJSON.response(PageJSON(data: visible.map(TopicJSON.init), nextCursor: nil))
    }

    func create(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        var request = request
        let body = try await APIJSON.decode(CreateTopicBody.self, from: &request, maxBytes: settings.maxBodyBytes)
        let global = body.global ?? false
        if global { try requireAdmin(caller) }
        let owner = global ? nil : caller.user.id
        let name = try validName(body.name)
        try await requireUnusedName(name, owner: owner, except: nil)
        let topic: Topic
        do {
            topic = try await topics.createTopic(
                ownerID: owner, name: name, description: try validDescription(body.description) ?? "",
                examples: try validExamples(body.examples) ?? [])
        } catch let error as DatabaseError where error.code == .duplicateKey {
            throw Self.nameTaken(name)
        }
        try await announce(owner: owner)
        return try APIJSON.response(TopicJSON(topic), status: .created, headers: [.location: "/api/v1/topics/\(topic.id)"])
    }

    func get(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let topic = try await visibleTopic(context, caller: caller)
        let rules = try await topics.rules(topicID: topic.id, visibleTo: caller.user.id)
        return try APIJSON.response(TopicDetailJSON(topic: TopicJSON(topic), rules: rules.map(RuleJSON.init)))
    }

    func update(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let topic = try await editableTopic(context, caller: caller)
        var request = request
        let body = try await APIJSON.decode(UpdateTopicBody.self, from: &request, maxBytes: settings.maxBodyBytes)
        let name = try body.name.map(validName)
        if let name, name != topic.name { try await requireUnusedName(name, owner: topic.ownerID, except: topic.id) }
        let updated: Topic?
        do {
            updated = try await topics.updateTopic(
                id: topic.id, ownerID: topic.ownerID, name: name, description: try validDescription(body.description),
                examples: try validExamples(body.examples))
        } catch let error as DatabaseError where error.code == .duplicateKey {
            throw Self.nameTaken(name ?? topic.name)
        }
        guard let updated else { throw SwitchboardError.notFound("no topic \(topic.id)") }
        try await announce(owner: topic.ownerID)
        return try APIJSON.response(TopicJSON(updated))
    }

    func delete(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let topic = try await editableTopic(context, caller: caller)
        guard try await topics.deleteTopic(id: topic.id, ownerID: topic.ownerID) else {
            throw SwitchboardError.notFound("no topic \(topic.id)")
        }
        try await announce(owner: topic.ownerID)
        return Response(status: .noContent)
    }

    // MARK: - Rules

    func createRule(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let topic = try await editableTopic(context, caller: caller)
        var request = request
        let body = try await APIJSON.decode(CreateRuleBody.self, from: &request, maxBytes: settings.maxBodyBytes)
        guard let kind = RoutingRule.Kind(rawValue: body.kind) else {
            throw SwitchboardError.invalidField("kind", "must be one of \(RoutingRule.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let pattern = try validPattern(body.pattern, kind: kind)
        if try await topics.ruleCount(ownerID: topic.ownerID) >= Self.maxRulesPerOwner {
            throw SwitchboardError(.limitExceeded, status: 409, "a user's topics hold at most \(Self.maxRulesPerOwner) rules; delete one first")
        }
        let rule = try await topics.createRule(
            topicID: topic.id, ownerID: topic.ownerID, kind: kind, pattern: pattern, priority: try validPriority(body.priority) ?? 0,
            enabled: body.enabled ?? true)
        guard let rule else { throw SwitchboardError.notFound("no topic \(topic.id)") }
        try await announce(owner: topic.ownerID)
        return try APIJSON.response(
            RuleJSON(rule), status: .created, headers: [.location: "/api/v1/topics/\(topic.id)/rules/\(rule.id)"])
    }

    func updateRule(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let topic = try await editableTopic(context, caller: caller)
        let rule = try await ruleOf(topic, context: context, caller: caller)
        var request = request
        let body = try await APIJSON.decode(UpdateRuleBody.self, from: &request, maxBytes: settings.maxBodyBytes)
        let pattern = try body.pattern.map { try validPattern($0, kind: rule.kind) }
        guard try await topics.updateRule(
            id: rule.id, ownerID: topic.ownerID, pattern: pattern, priority: try validPriority(body.priority), enabled: body.enabled)
        else { throw SwitchboardError.notFound("no rule \(rule.id)") }
        try await announce(owner: topic.ownerID)
        let updated = try await ruleOf(topic, context: context, caller: caller)
        return try APIJSON.response(RuleJSON(updated))
    }

    func deleteRule(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let topic = try await editableTopic(context, caller: caller)
        let rule = try await ruleOf(topic, context: context, caller: caller)
        guard try await topics.deleteRule(id: rule.id, ownerID: topic.ownerID) else { throw SwitchboardError.notFound("no rule \(rule.id)") }
        try await announce(owner: topic.ownerID)
        return Response(status: .noContent)
    }

    // MARK: - Access

    private func visibleTopic(_ context: APIRequestContext, caller: AuthenticatedCaller) async throws -> Topic {
        let id = try api.pathID(context, "topicId", what: "topic")
        guard let topic = try await topics.topic(id: id, visibleTo: caller.user.id) else { throw SwitchboardError.notFound("no topic \(id)") }
        return topic
    }

    /// The caller's own topic, or a global one when the caller is an admin (403 otherwise).
    private func editableTopic(_ context: APIRequestContext, caller: AuthenticatedCaller) async throws -> Topic {
        let topic = try await visibleTopic(context, caller: caller)
        if topic.ownerID == nil { try requireAdmin(caller) }
        return topic
    }

    private func ruleOf(_ topic: Topic, context: APIRequestContext, caller: AuthenticatedCaller) async throws -> RoutingRule {
        let id = try api.pathID(context, "ruleId", what: "rule")
        guard let rule = try await topics.rules(topicID: topic.id, visibleTo: caller.user.id).first(where: { $0.id == id }) else {
            throw SwitchboardError.notFound("no rule \(id) in topic \(topic.id)")
        }
        return rule
    }

    private func requireAdmin(_ caller: AuthenticatedCaller) throws {
        guard caller.user.role == .admin else {
            throw SwitchboardError(.forbidden, status: 403, "only admins may change global topics")
        }
    }

    private func announce(owner: Int64?) async throws {
        _ = try await dependencies.redis.publish(TopicChanges.channel, TopicChanges.payload(ownerID: owner))
    }

    // MARK: - Validation

    private static func nameTaken(_ name: String) -> SwitchboardError {
        SwitchboardError(.conflict, status: 409, "a topic named '\(name)' exists already")
    }

    /// The unique key does not cover global topics (their owner is NULL), so names are checked here too.
    private func requireUnusedName(_ name: String, owner: Int64?, except: Int64?) async throws {
        let folded = name.lowercased()
        let clash = try await topics.topics(visibleTo: owner).contains {
            $0.ownerID == owner && $0.id != except && $0.name.lowercased() == folded
        }
        if clash { throw Self.nameTaken(name) }
    }

    private func validName(_ name: String) throws -> String {
        let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty { throw SwitchboardError.invalidField("name", "must not be empty") }
        if trimmed.unicodeScalars.count > Self.maxNameCharacters {
            throw SwitchboardError.invalidField("name", "is longer than \(Self.maxNameCharacters) characters")
        }
        return trimmed
    }

    private func validDescription(_ description: String?) throws -> String? {
        guard let description else { return nil }
        if description.unicodeScalars.count > Self.maxDescriptionCharacters {
            throw SwitchboardError.invalidField("description", "is longer than \(Self.maxDescriptionCharacters) characters")
        }
        return description
    }

    private func validExamples(_ examples: [String]?) throws -> [String]? {
        guard let examples else { return nil }
        if examples.count > Self.maxExamples { throw SwitchboardError.invalidField("examples", "has more than \(Self.maxExamples) phrases") }
        return try examples.enumerated().map { index, phrase in
            let trimmed = phrase.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { throw SwitchboardError.invalidField("examples[\(index)]", "must not be empty") }
            if trimmed.unicodeScalars.count > Self.maxExampleCharacters {
                throw SwitchboardError.invalidField("examples[\(index)]", "is longer than \(Self.maxExampleCharacters) characters")
            }
            return trimmed
        }
    }

    private func validPattern(_ pattern: String, kind: RoutingRule.Kind) throws -> String {
        if pattern.isEmpty { throw SwitchboardError.invalidField("pattern", "must not be empty") }
        if pattern.unicodeScalars.count > Self.maxPatternCharacters {
            throw SwitchboardError.invalidField("pattern", "is longer than \(Self.maxPatternCharacters) characters")
        }
        if let problem = RulePattern.problem(kind: kind, pattern: pattern) { throw SwitchboardError.invalidField("pattern", problem) }
        return pattern
    }

    private func validPriority(_ priority: Int?) throws -> Int? {
        guard let priority else { return nil }
        guard Self.priorities.contains(priority) else {
            throw SwitchboardError.invalidField("priority", "must be an integer from \(Self.priorities.lowerBound) to \(Self.priorities.upperBound)")
        }
        return priority
    }
}

// MARK: - Bodies and representations

struct CreateTopicBody: Decodable {
    let name: String
    let description: String?
    let examples: [String]?
    /// A topic every user's messages are routed to (admins only).
    let global: Bool?
}

struct UpdateTopicBody: Decodable {
    let name: String?
    let description: String?
    let examples: [String]?
}

struct CreateRuleBody: Decodable {
    let kind: String
    let pattern: String
    let priority: Int?
    let enabled: Bool?
}

struct UpdateRuleBody: Decodable {
    let pattern: String?
    let priority: Int?
    let enabled: Bool?
}

struct TopicJSON: Encodable {
    let id: Int64
    let name: String
    let description: String
    let examples: [String]
    /// `global` (every user's) or `user` (the caller's own).
    let scope: String
    let createdAt: Date
    let updatedAt: Date

    init(_ topic: Topic) {
        id = topic.id
        name = topic.name
        description = topic.description
        examples = topic.examples
        scope = topic.ownerID == nil ? "global" : "user"
        createdAt = topic.createdAt
        updatedAt = topic.updatedAt
    }
}

struct TopicDetailJSON: Encodable {
    let topic: TopicJSON
    let rules: [RuleJSON]
}

struct RuleJSON: Encodable {
    let id: Int64
    let topicId: Int64
    let kind: String
    let pattern: String
    let priority: Int
    let enabled: Bool
    let createdAt: Date
    let updatedAt: Date

    init(_ rule: RoutingRule) {
        id = rule.id
        topicId = rule.topicID
        kind = rule.kind.rawValue
        pattern = rule.pattern
        priority = rule.priority
        enabled = rule.enabled
        createdAt = rule.createdAt
        updatedAt = rule.updatedAt
    }
}
