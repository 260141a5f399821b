import Foundation
import SwitchboardCore
import Storage

/// The JSON shapes of the public API (documented in docs/openapi.yaml).
struct ChatJSON: Encodable {
    let id: Int64
    let title: String
    let channel: String
    let createdAt: Date
    let updatedAt: Date

    init(_ chat: Chat) {
        id = chat.id
        title = chat.title
        channel = chat.channel.rawValue
        createdAt = chat.createdAt
        updatedAt = chat.updatedAt
    }
}

struct MessageJSON: Encodable {
    let id: Int64
    let chatId: Int64
    let role: String
    let content: String
    let status: String
    let replyToId: Int64?
    let topic: String?
    let language: String?
    let error: String?
    /// For a reply: when it was delivered on its channel of origin (null until then).
    let deliveredAt: Date?
    /// For a reply sent to an outside channel: `sent`, `delivered`, `read` or `failed` (null otherwise).
    let deliveryStatus: String?
    let createdAt: Date
    let updatedAt: Date

    init(_ message: Message) {
        id = message.id
        chatId = message.chatID
        role = message.role.rawValue
        content = message.content
        status = message.status.rawValue
        replyToId = message.replyToID
        topic = message.topic
        language = message.language
        error = message.error
        deliveredAt = message.deliveredAt
        deliveryStatus = message.deliveryStatus?.name
        createdAt = message.createdAt
        updatedAt = message.updatedAt
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(chatId, forKey: .chatId)
        try c.encode(role, forKey: .role)
        try c.encode(content, forKey: .content)
        try c.encode(status, forKey: .status)
        try c.encode(replyToId, forKey: .replyToId)
        try c.encode(topic, forKey: .topic)
        try c.encode(language, forKey: .language)
        try c.encode(error, forKey: .error)
        try c.encode(deliveredAt, forKey: .deliveredAt)
        try c.encode(deliveryStatus, forKey: .deliveryStatus)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(updatedAt, forKey: .updatedAt)
    }

    enum CodingKeys: String, CodingKey {
        case id, chatId, role, content, status, replyToId, topic, language, error, deliveredAt, deliveryStatus, createdAt, updatedAt
    }
}

struct TaskJSON: Encodable {
    let nodeId: String
    let capability: String
    let state: String
    let dependsOn: [String]
    let output: String?
    let error: String?
    let startedAt: Date?
    let finishedAt: Date?

    init(_ task: MessageTask) {
        nodeId = task.nodeID
        capability = task.capability
        state = task.state.rawValue
        dependsOn = task.dependsOn
        output = task.output
        error = task.error
        startedAt = task.startedAt
        finishedAt = task.finishedAt
    }
}

/// GET /api/v1/messages/{id}: the message, its turn's task rows and, once answered, the reply.
struct MessageDetailJSON: Encodable {
    let message: MessageJSON
    let tasks: [TaskJSON]
    let reply: MessageJSON?
    let events: String
    /// The user's documents the reply drew on (`rag_query`); empty when none.
    var sources: [ReplySource] = []
    /// The files sent with the message (`fileIds` when it was posted); empty when none.
    var fileIds: [Int64] = []

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(message, forKey: .message)
        try c.encode(tasks, forKey: .tasks)
        try c.encode(reply, forKey: .reply)
        try c.encode(events, forKey: .events)
        try c.encode(sources, forKey: .sources)
        try c.encode(fileIds, forKey: .fileIds)
    }

    enum CodingKeys: String, CodingKey { case message, tasks, reply, events, sources, fileIds }
}

struct PageJSON<Item: Encodable>: Encodable {
    let data: [Item]
    /// Pass as `cursor` for the next page; null on the last page.
    let nextCursor: String?

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(data, forKey: .data)
        try c.encode(nextCursor, forKey: .nextCursor)
    }

    enum CodingKeys: String, CodingKey { case data, nextCursor }
}

/// The 202 answer to a submitted message.
struct AcceptedJSON: Codable, Equatable {
    let messageId: Int64
    let chatId: Int64
    let status: String
    let events: String
}

struct StopJSON: Encodable {
    let messageId: Int64
    let status: String
}

struct UserJSON: Encodable {
    let id: Int64
    let email: String
    let name: String
    let role: String
}

// Request bodies.
struct CreateChatBody: Decodable {
    let title: String?
}

struct PostMessageBody: Decodable {
    let content: String
    /// The caller's uploaded files to attach (their text reaches the turn).
    let fileIds: [Int64]?
}

struct SubmitMessageBody: Decodable {
    let content: String
    let chatId: Int64?
    let title: String?
    let fileIds: [Int64]?
}

enum Links {
    static func events(_ messageID: Int64) -> String { "/api/v1/messages/\(messageID)/events" }
}
