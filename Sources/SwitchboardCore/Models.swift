import Foundation

// Domain records as they are stored. Every id is a database-assigned `Int64`
// (BIGINT UNSIGNED AUTO_INCREMENT); every timestamp is UTC with microsecond precision.

/// Where a message came from and where its answer goes back to.
public enum Channel: String, Codable, Sendable, CaseIterable {
    case web, widget, whatsapp, email, api, webhook
}

public struct User: Codable, Sendable, Hashable {
    public enum Role: String, Codable, Sendable, CaseIterable {
        case user, `operator`, admin
    }

    public var id: Int64
    public var email: String
    public var name: String
    public var role: Role
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: Int64, email: String, name: String, role: Role, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.email = email
        self.name = name
        self.role = role
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// An API key; only the SHA-256 of the secret is kept, plus a short prefix to recognise it by.
public struct APIKey: Codable, Sendable, Hashable {
    public var id: Int64
    public var userID: Int64
    public var name: String
    public var prefix: String
    /// Lower-case hex SHA-256 of the full key.
    public var keyHash: String
    public var createdAt: Date
    public var lastUsedAt: Date?
    public var revokedAt: Date?

    public var isRevoked: Bool { revokedAt != nil }

    public init(
        id: Int64, userID: Int64, name: String, prefix: String, keyHash: String,
        createdAt: Date, lastUsedAt: Date? = nil, revokedAt: Date? = nil
    ) {
        self.id = id
        self.userID = userID
        self.name = name
        self.prefix = prefix
        self.keyHash = keyHash
        self.createdAt = createdAt
        self.lastUsedAt = lastUsedAt
        self.revokedAt = revokedAt
    }
}

public struct Chat: Codable, Sendable, Hashable {
    public var id: Int64
    public var ownerID: Int64
    public var title: String
    public var channel: Channel
    /// Thread key on the channel of origin (email thread root Message-ID, WhatsApp number, ...).
    public var externalThreadKey: String?
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: Int64, ownerID: Int64, title: String, channel: Channel, externalThreadKey: String?,
        createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.ownerID = ownerID
        self.title = title
        self.channel = channel
        self.externalThreadKey = externalThreadKey
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

public enum MessageRole: String, Codable, Sendable, CaseIterable {
    case user, assistant, system, `operator`
}

public enum MessageStatus: String, Codable, Sendable, CaseIterable {
    case queued, running, completed, failed, cancelled

    /// A finished turn does not change status again.
    public var isFinal: Bool { self == .completed || self == .failed || self == .cancelled }
}

public struct Message: Codable, Sendable, Hashable {
    public var id: Int64
    public var chatID: Int64
    public var ownerID: Int64
    /// For an answer: the message it answers.
    public var replyToID: Int64?
    public var role: MessageRole
    public var content: String
    public var status: MessageStatus
    public var topic: String?
    public var language: String?
    public var error: String?
    public var channel: Channel
    /// The channel's own id for the message (WhatsApp wamid, email Message-ID); unique per channel.
    public var externalID: String?
    public var idempotencyKey: String?
    /// For an answer: when the `delivery` job handed it to the channel of origin.
    public var deliveredAt: Date?
    /// For an answer sent to an outside channel: how far the channel says it got.
    public var deliveryStatus: DeliveryStatus?
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: Int64, chatID: Int64, ownerID: Int64, replyToID: Int64? = nil, role: MessageRole, content: String,
        status: MessageStatus, topic: String? = nil, language: String? = nil, error: String? = nil,
        channel: Channel, externalID: String? = nil, idempotencyKey: String? = nil, deliveredAt: Date? = nil,
        deliveryStatus: DeliveryStatus? = nil, createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.chatID = chatID
        self.ownerID = ownerID
        self.replyToID = replyToID
        self.role = role
        self.content = content
        self.status = status
        self.topic = topic
        self.language = language
        self.error = error
        self.channel = channel
        self.externalID = externalID
        self.idempotencyKey = idempotencyKey
        self.deliveredAt = deliveredAt
        self.deliveryStatus = deliveryStatus
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// One node of a turn's task graph.
public struct MessageTask: Codable, Sendable, Hashable {
    public enum State: String, Codable, Sendable, CaseIterable {
        case pending, running, done, failed, skipped
    }

    public var id: Int64
    public var messageID: Int64
    public var nodeID: String
    public var capability: String
    public var state: State
    public var dependsOn: [String]
    public var output: String?
    public var error: String?
    public var createdAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?

    public init(
        id: Int64, messageID: Int64, nodeID: String, capability: String, state: State, dependsOn: [String],
        output: String? = nil, error: String? = nil, createdAt: Date, startedAt: Date? = nil, finishedAt: Date? = nil
    ) {
        self.id = id
        self.messageID = messageID
        self.nodeID = nodeID
        self.capability = capability
        self.state = state
        self.dependsOn = dependsOn
        self.output = output
        self.error = error
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
    }
}

/// An uploaded attachment and the text extracted from it.
public struct StoredFile: Codable, Sendable, Hashable {
    public enum ExtractStatus: String, Codable, Sendable, CaseIterable {
        case pending, running, done, failed
    }

    public var id: Int64
    public var ownerID: Int64
    public var chatID: Int64?
    public var messageID: Int64?
    public var name: String
    public var mimeType: String
    public var size: Int64
    public var sha256: String
    public var storagePath: String
    public var extractedText: String?
    public var extractStatus: ExtractStatus
    public var extractError: String?
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: Int64, ownerID: Int64, chatID: Int64?, messageID: Int64?, name: String, mimeType: String, size: Int64,
        sha256: String, storagePath: String, extractedText: String? = nil, extractStatus: ExtractStatus = .pending,
        extractError: String? = nil, createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.ownerID = ownerID
        self.chatID = chatID
        self.messageID = messageID
        self.name = name
        self.mimeType = mimeType
        self.size = size
        self.sha256 = sha256
        self.storagePath = storagePath
        self.extractedText = extractedText
        self.extractStatus = extractStatus
        self.extractError = extractError
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// A piece of a file's text with its embedding (`embedding.count` is the dimension; empty when not embedded yet).
public struct Chunk: Codable, Sendable, Hashable {
    public var id: Int64
    public var fileID: Int64
    public var ownerID: Int64
    public var ordinal: Int
    public var text: String
    public var embedding: [Float]
    public var createdAt: Date

    public var dimension: Int { embedding.count }

    public init(id: Int64, fileID: Int64, ownerID: Int64, ordinal: Int, text: String, embedding: [Float], createdAt: Date) {
        self.id = id
        self.fileID = fileID
        self.ownerID = ownerID
        self.ordinal = ordinal
        self.text = text
        self.embedding = embedding
        self.createdAt = createdAt
    }
}

/// An embeddable chat widget.
/// How far an outside channel says a reply got; only ever raised (a late `delivered` after
/// `read` changes nothing).
public enum DeliveryStatus: Int, Codable, Sendable, Comparable, CaseIterable {
    case sent = 1, delivered = 2, read = 3, failed = 4

    public var name: String {
        switch self {
        case .sent: "sent"
        case .delivered: "delivered"
        case .read: "read"
        case .failed: "failed"
        }
    }

    public init?(name: String) {
        guard let status = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = status
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A user's connection to an outside channel (a WhatsApp number): its settings in clear and its
/// secrets sealed (AES-GCM, opened only by the application with the configured key). `publicID`
/// is the unguessable id in its webhook URL.
public struct ChannelConnection: Sendable, Hashable {
    public var id: Int64
    public var ownerID: Int64
    /// `whatsapp`, …: which adapter reads its traffic.
    public var type: String
    public var name: String
    public var publicID: String
    public var settings: [String: String]
    public var sealedSecrets: Data
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: Int64, ownerID: Int64, type: String, name: String, publicID: String, settings: [String: String], sealedSecrets: Data,
        createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.ownerID = ownerID
        self.type = type
        self.name = name
        self.publicID = publicID
        self.settings = settings
        self.sealedSecrets = sealedSecrets
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

public struct NewChannelConnection: Sendable, Hashable {
    public var ownerID: Int64
    public var type: String
    public var name: String
    public var publicID: String
    public var settings: [String: String]
    public var sealedSecrets: Data

    public init(ownerID: Int64, type: String, name: String, publicID: String, settings: [String: String], sealedSecrets: Data) {
        self.ownerID = ownerID
        self.type = type
        self.name = name
        self.publicID = publicID
        self.settings = settings
        self.sealedSecrets = sealedSecrets
    }
}

public struct Widget: Codable, Sendable, Hashable {
    public var id: Int64
    public var ownerID: Int64
    /// Public identifier used by the widget script and the public widget endpoints.
    public var publicKey: String
    public var name: String
    public var allowedOrigins: [String]
    public var settings: [String: String]
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: Int64, ownerID: Int64, publicKey: String, name: String, allowedOrigins: [String],
        settings: [String: String], createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.ownerID = ownerID
        self.publicKey = publicKey
        self.name = name
        self.allowedOrigins = allowedOrigins
        self.settings = settings
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// A visitor's conversation through a widget; `mode` decides who answers.
public struct WidgetSession: Codable, Sendable, Hashable {
    public enum Mode: String, Codable, Sendable, CaseIterable {
        case ai, waiting, human
    }

    public var id: Int64
    public var widgetID: Int64
    public var visitorSessionID: String
    public var mode: Mode
    public var chatID: Int64?
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: Int64, widgetID: Int64, visitorSessionID: String, mode: Mode, chatID: Int64?, createdAt: Date,
        updatedAt: Date
    ) {
        self.id = id
        self.widgetID = widgetID
        self.visitorSessionID = visitorSessionID
        self.mode = mode
        self.chatID = chatID
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// A routing topic; `ownerID == nil` makes it global (visible to every user).
public struct Topic: Codable, Sendable, Hashable {
    public var id: Int64
    public var ownerID: Int64?
    public var name: String
    public var description: String
    /// Example phrases for the embedding router.
    public var examples: [String]
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: Int64, ownerID: Int64?, name: String, description: String, examples: [String], createdAt: Date,
        updatedAt: Date
    ) {
        self.id = id
        self.ownerID = ownerID
        self.name = name
        self.description = description
        self.examples = examples
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// A keyword or regex rule that sends matching messages to its topic; higher priority is tried first.
public struct RoutingRule: Codable, Sendable, Hashable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case keyword, regex
    }

    public var id: Int64
    public var topicID: Int64
    public var kind: Kind
    public var pattern: String
    public var priority: Int
    public var enabled: Bool
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: Int64, topicID: Int64, kind: Kind, pattern: String, priority: Int, enabled: Bool, createdAt: Date,
        updatedAt: Date
    ) {
        self.id = id
        self.topicID = topicID
        self.kind = kind
        self.pattern = pattern
        self.priority = priority
        self.enabled = enabled
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// One provider call to be recorded (a `UsageRecord` before it has an id).
public struct UsageCall: Sendable, Hashable {
    public var userID: Int64
    public var messageID: Int64?
    public var provider: String
    public var model: String
    public var promptTokens: Int
    public var completionTokens: Int
    public var latencyMs: Int

    public init(userID: Int64, messageID: Int64?, provider: String, model: String, promptTokens: Int, completionTokens: Int, latencyMs: Int) {
        self.userID = userID
        self.messageID = messageID
        self.provider = provider
        self.model = model
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.latencyMs = latencyMs
    }
}

/// Tokens and latency of one provider call, per user: a stored `UsageCall` (its fields read
/// through, `record.model`).
@dynamicMemberLookup
public struct UsageRecord: Sendable, Hashable {
    public var id: Int64
    /// The call this row records.
    public var call: UsageCall
    public var createdAt: Date

    public var totalTokens: Int { call.promptTokens + call.completionTokens }

    public subscript<T>(dynamicMember field: KeyPath<UsageCall, T>) -> T { call[keyPath: field] }

    public init(id: Int64, call: UsageCall, createdAt: Date) {
        self.id = id
        self.call = call
        self.createdAt = createdAt
    }
}
