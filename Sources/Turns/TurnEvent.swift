/// The vocabulary of a turn's progress: every event a client reads from a turn stream, encoded
/// and decoded in one place. The pipeline emits these, the stream carries them, the api relays them.
import Foundation
import SwitchboardCore

/// The vocabulary of a turn's progress, as clients read it from the turn stream (SSE `event:`
/// names and `data:` JSON). Field names follow the public event documentation in docs/api.md.
public enum TurnEvent: Sendable, Equatable {
    case status(TurnStatus)
    case plan(TurnPlan)
    case taskUpdate(TaskUpdate)
    case taskChunk(TaskChunk)
    case taskFile(TaskFile)
    case chunk(TextChunk)
    case complete(TurnCompletion)
    case error(TurnErrorEvent)

    /// The SSE `event:` name.
    public var type: String {
        switch self {
        case .status: "status"
        case .plan: "plan"
        case .taskUpdate: "task_update"
        case .taskChunk: "task_chunk"
        case .taskFile: "task_file"
        case .chunk: "chunk"
        case .complete: "complete"
        case .error: "error"
        }
    }

    /// `complete` and `error` end a turn's stream; nothing follows them.
    public var isFinal: Bool {
        switch self {
        case .complete, .error: true
        default: false
        }
    }

    /// The event's `data:` JSON (one line).
    public func encodedData() throws -> [UInt8] {
        let encoder = TurnEventCoding.encoder
        switch self {
        case .status(let value): return Array(try encoder.encode(value))
        case .plan(let value): return Array(try encoder.encode(value))
        case .taskUpdate(let value): return Array(try encoder.encode(value))
        case .taskChunk(let value): return Array(try encoder.encode(value))
        case .taskFile(let value): return Array(try encoder.encode(value))
        case .chunk(let value): return Array(try encoder.encode(value))
        case .complete(let value): return Array(try encoder.encode(value))
        case .error(let value): return Array(try encoder.encode(value))
        }
    }

    /// Decodes an event read back from the stream; nil for a type this build does not know.
    public static func decode(type: String, data: [UInt8]) throws -> TurnEvent? {
        let decoder = JSONDecoder()
        let data = Data(data)
        switch type {
        case "status": return .status(try decoder.decode(TurnStatus.self, from: data))
        case "plan": return .plan(try decoder.decode(TurnPlan.self, from: data))
        case "task_update": return .taskUpdate(try decoder.decode(TaskUpdate.self, from: data))
        case "task_chunk": return .taskChunk(try decoder.decode(TaskChunk.self, from: data))
        case "task_file": return .taskFile(try decoder.decode(TaskFile.self, from: data))
        case "chunk": return .chunk(try decoder.decode(TextChunk.self, from: data))
        case "complete": return .complete(try decoder.decode(TurnCompletion.self, from: data))
        case "error": return .error(try decoder.decode(TurnErrorEvent.self, from: data))
        default: return nil
        }
    }

    // Shorthands for the common cases.
    public static func status(_ stage: TurnStatus.Stage) -> TurnEvent { .status(TurnStatus(stage: stage)) }
    public static func chunk(_ text: String) -> TurnEvent { .chunk(TextChunk(text: text)) }
    public static func error(code: String, message: String) -> TurnEvent { .error(TurnErrorEvent(code: code, message: message)) }
}

enum TurnEventCoding {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        return encoder
    }()
}

/// `status`: where the turn is. `classified` carries what the classifier decided and which step decided it.
public struct TurnStatus: Codable, Sendable, Equatable {
    public struct Stage: RawRepresentable, Codable, Sendable, Hashable, ExpressibleByStringLiteral {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public init(stringLiteral value: String) { self.rawValue = value }
        public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(rawValue)
        }

        public static let started: Stage = "started"
        /// A redelivered turn starts over: clients drop the text they collected so far.
        public static let restarted: Stage = "restarted"
        public static let extracting: Stage = "extracting"
        public static let classifying: Stage = "classifying"
        public static let classified: Stage = "classified"
        public static let planning: Stage = "planning"
        public static let generating: Stage = "generating"
    }

    public var stage: Stage
    public var topic: String?
    public var language: String?
    public var source: String?
    public var attempt: Int?

    public init(stage: Stage, topic: String? = nil, language: String? = nil, source: String? = nil, attempt: Int? = nil) {
        self.stage = stage
        self.topic = topic
        self.language = language
        self.source = source
        self.attempt = attempt
    }
}

/// `plan`: the task graph a multi-intent message was split into. When the planner's graph was
/// unusable and replaced by a single `chat` node, `fallback` is true and `fallbackReason` says why.
public struct TurnPlan: Codable, Sendable, Equatable {
    public struct Node: Codable, Sendable, Equatable {
        public var id: String
        public var capability: String
        public var kind: String
        public init(id: String, capability: String, kind: String) {
            self.id = id
            self.capability = capability
            self.kind = kind
        }
    }
    public var nodes: [Node]
    public var replyNode: String
    /// True when this is the fallback graph, not the planner's (absent otherwise).
    public var fallback: Bool?
    public var fallbackReason: String?

    enum CodingKeys: String, CodingKey {
        case nodes
        case replyNode = "reply_node"
        case fallback
        case fallbackReason = "fallback_reason"
    }

    public init(nodes: [Node], replyNode: String, fallbackReason: String? = nil) {
        self.nodes = nodes
        self.replyNode = replyNode
        self.fallback = fallbackReason == nil ? nil : true
        self.fallbackReason = fallbackReason
    }
}

/// `task_update`: a node of the plan changed state.
public struct TaskUpdate: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        case running, done, failed, skipped
    }
    public var nodeID: String
    public var state: State
    public var error: String?

    enum CodingKeys: String, CodingKey {
        case nodeID = "node_id"
        case state, error
    }

    public init(nodeID: String, state: State, error: String? = nil) {
        self.nodeID = nodeID
        self.state = state
        self.error = error
    }
}

/// `task_chunk`: text a node produced (not part of the reply).
public struct TaskChunk: Codable, Sendable, Equatable {
    public var nodeID: String
    public var text: String

    enum CodingKeys: String, CodingKey {
        case nodeID = "node_id"
        case text
    }

    public init(nodeID: String, text: String) {
        self.nodeID = nodeID
        self.text = text
    }
}

/// `task_file`: a file a node produced.
public struct TaskFile: Codable, Sendable, Equatable {
    public var nodeID: String
    public var url: String
    public var type: String

    enum CodingKeys: String, CodingKey {
        case nodeID = "node_id"
        case url, type
    }

    public init(nodeID: String, url: String, type: String) {
        self.nodeID = nodeID
        self.url = url
        self.type = type
    }
}

/// `chunk`: the next piece of the reply.
public struct TextChunk: Codable, Sendable, Equatable {
    public var text: String
    public init(text: String) { self.text = text }
}

/// Token counts of a turn.
public struct TurnUsage: Codable, Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int { promptTokens + completionTokens }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case totalTokens = "total_tokens"
    }

    public init(promptTokens: Int, completionTokens: Int) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        promptTokens = try container.decode(Int.self, forKey: .promptTokens)
        completionTokens = try container.decode(Int.self, forKey: .completionTokens)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(promptTokens, forKey: .promptTokens)
        try container.encode(completionTokens, forKey: .completionTokens)
        try container.encode(totalTokens, forKey: .totalTokens)
    }
}

/// `complete`: the turn succeeded; the reply is stored as message `replyId`.
public struct TurnCompletion: Codable, Sendable, Equatable {
    public var messageId: Int64
    public var replyId: Int64?
    public var topic: String?
    public var language: String?
    public var provider: String?
    public var model: String?
    public var usage: TurnUsage?
    /// The user's documents the reply drew on (absent when it drew on none).
    public var sources: [ReplySource]?

    public init(
        messageId: Int64, replyId: Int64? = nil, topic: String? = nil, language: String? = nil, provider: String? = nil,
        model: String? = nil, usage: TurnUsage? = nil, sources: [ReplySource]? = nil
    ) {
        self.messageId = messageId
        self.replyId = replyId
        self.topic = topic
        self.language = language
        self.provider = provider
        self.model = model
        self.usage = usage
        self.sources = sources
    }
}

/// `error`: the turn ended without an answer (`cancelled` when the user stopped it).
public struct TurnErrorEvent: Codable, Sendable, Equatable {
    public var code: String
    public var message: String
    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }
}
