/// Pipeline owns what a worker does with a user's message before and while it is answered:
/// Extract (attachments to text: plain text, Markdown, HTML, PDF via `pdftotext`, DOCX),
/// Classify (cheapest first: slash commands, attachment rules, a fast path for short plain
/// messages, keyword/regex topic rules from MariaDB cached and invalidated over Redis pub/sub, an
/// embedding router over example phrases, then the AI sorter), Plan (an AI planner's task graph,
/// validated, with a single `chat` node as fallback) and Execute (a bounded concurrent DAG
/// executor over a registry of capabilities that streams progress as `TurnEvent`s to a
/// `TurnEventSink`). `RoutingPipeline` answers a turn; the `turn` job that runs it on workers, with
/// the other jobs around the pipeline, is in `TurnJob/`. docs/pipeline.md describes the whole.
import AIProviders
import Foundation
import Storage
import SwitchboardCore
import Turns

/// A message to answer, with what the pipeline needs around it.
public struct TurnInput: Sendable {
    public var messageID: Int64
    public var userID: Int64
    public var chatID: Int64?
    public var text: String
    public var channel: Channel
    public var attachments: [TurnAttachment]
    /// Earlier messages of the chat, oldest first (without the message itself).
    public var history: [ChatMessage]
    /// A run of a turn that an earlier run had started (its task rows are replaced, not added).
    public var isRestart = false
    /// The user has indexed documents this node can search (`rag_query` is planned then, unless
    /// the classifier says the message does not need them).
    public var hasDocuments = false
    /// The classified topic's ids (the user's topic and a global one of that name), set once the
    /// turn is classified when the user has documents: `rag_query` searches their documents when
    /// they have any, every document of the user otherwise.
    public var topicIDs: Set<Int64> = []

    public init(
        messageID: Int64, userID: Int64, chatID: Int64? = nil, text: String, channel: Channel = .web,
        attachments: [TurnAttachment] = [], history: [ChatMessage] = []
    ) {
        self.messageID = messageID
        self.userID = userID
        self.chatID = chatID
        self.text = text
        self.channel = channel
        self.attachments = attachments
        self.history = history
    }
}

/// A file sent with the message.
public struct TurnAttachment: Sendable, Hashable {
    public var fileID: Int64?
    public var name: String
    public var mimeType: String
    /// The extracted text when extraction ran already.
    public var text: String?
    /// Where the bytes are, to extract on demand.
    public var path: String?
    public var extractError: String?

    public init(fileID: Int64? = nil, name: String, mimeType: String, text: String? = nil, path: String? = nil, extractError: String? = nil) {
        self.fileID = fileID
        self.name = name
        self.mimeType = mimeType
        self.text = text
        self.path = path
        self.extractError = extractError
    }

    public init(file: StoredFile) {
        self.init(
            fileID: file.id, name: file.name, mimeType: file.mimeType, text: file.extractedText, path: file.storagePath,
            extractError: file.extractError
        )
    }
}

/// How a turn ended well: its reply (already streamed as `chunk` events) and what produced it.
public struct TurnOutcome: Sendable, Equatable {
    public var reply: String
    public var classification: Classification
    public var provider: String
    public var model: String
    /// Summed over every model call of the turn (sorter, planner, every node).
    public var usage: TokenUsage
    /// Node states when a graph ran (empty for a reply answered without one).
    public var tasks: [String: NodeState]
    /// The user's documents the reply drew on (from `rag_query` nodes), best first.
    public var sources: [ReplySource]

    public init(
        reply: String, classification: Classification, provider: String, model: String, usage: TokenUsage, tasks: [String: NodeState],
        sources: [ReplySource] = []
    ) {
        self.reply = reply
        self.classification = classification
        self.provider = provider
        self.model = model
        self.usage = usage
        self.tasks = tasks
        self.sources = sources
    }
}

/// A failure the user sees as the turn's `error` event. Cancellation is thrown as `CancellationError`.
public typealias PipelineError = CodedError<PipelineFailure>

/// The kind of `PipelineError`s.
public enum PipelineFailure {}

extension ErrorCode where Kind == PipelineFailure {
    /// The node that produces the reply failed or was skipped.
    public static var replyFailed: Self { "reply_failed" }
    /// An attachment cannot be read (unsupported or corrupt).
    public static var extractionFailed: Self { "extraction_failed" }
    /// The provider failed before any reply could be produced (the provider's own code is in the message).
    public static var providerFailed: Self { "provider_failed" }
    public static var internalError: Self { "internal_error" }
}

/// A node's state as `task_update` reports it and `message_tasks` stores it.
public enum NodeState: String, Sendable, Hashable, Codable {
    case pending, running, done, failed, skipped

    /// The state a `task_update` event reports (a pending node is not reported).
    var reported: TaskUpdate.State? {
        switch self {
        case .pending: nil
        case .running: .running
        case .done: .done
        case .failed: .failed
        case .skipped: .skipped
        }
    }

    var taskState: MessageTask.State {
        switch self {
        case .pending: .pending
        case .running: .running
        case .done: .done
        case .failed: .failed
        case .skipped: .skipped
        }
    }
}
