import Foundation
import Logging
import Storage
import SwitchboardCore

/// What a responder gets to answer: the user's message and where to report progress.
public struct TurnRequest: Sendable {
    /// The message with its attachment count and the chat's earlier messages (read in one query).
    public var context: MessageContext
    public var message: Message {
        get { context.message }
        set { context.message = newValue }
    }
    /// 1 on the first run; more when the job was redelivered after a failure or a dead worker.
    public var attempt: Int
    /// An earlier run had started this turn (it shows as `restarted`).
    public var isRestart: Bool
    public var logger: Logger

    public init(context: MessageContext, attempt: Int, isRestart: Bool = false, logger: Logger) {
        self.context = context
        self.attempt = attempt
        self.isRestart = isRestart
        self.logger = logger
    }
}

/// The answer a responder produced (its text already streamed as `chunk` events).
public struct TurnReply: Sendable, Equatable {
    public var content: String
    public var topic: String?
    public var language: String?
    public var provider: String?
    public var model: String?
    public var usage: TurnUsage?

    public init(
        content: String, topic: String? = nil, language: String? = nil, provider: String? = nil, model: String? = nil,
        usage: TurnUsage? = nil
    ) {
        self.content = content
        self.topic = topic
        self.language = language
        self.provider = provider
        self.model = model
        self.usage = usage
    }
}

/// A failure the responder wants the user to see as the turn's `error` event.
public struct TurnFailure: Error, Sendable, Equatable {
    public var code: String
    public var message: String
    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }
}

/// Where a responder reports progress: `status`, `plan`, `task_*` and `chunk` events. The turn
/// path itself writes `started`, `complete` and `error`. Events are queued in order
/// (`TurnEventQueue`) rather than awaited one round trip each.
public struct TurnEmitter: Sendable {
    let events: TurnEventQueue

    public init(writer: TurnStreamWriter) {
        self.init(events: TurnEventQueue(writer: writer))
    }

    init(events: TurnEventQueue) {
        self.events = events
    }

    public var messageID: Int64 { events.writer.messageID }

    /// Queues `event` for the turn stream. Final events are reserved to the turn path.
    public func emit(_ event: TurnEvent) async throws {
        precondition(!event.isFinal, "complete and error are written by the turn path")
        try await events.append(event)
    }

    /// Waits until every emitted event is in the stream.
    public func flush() async throws { try await events.flush() }
}

/// The `queued → running` commit of a turn, made while the turn already reads, classifies and
/// plans: its events are held until the commit owns the message (`TurnEventQueue`'s gate).
final class TurnClaim: Sendable {
    private let commit: Task<Bool, any Error>

    init(_ commit: @escaping @Sendable () async throws -> Bool) {
        self.commit = Task { try await commit() }
    }

    /// True when the commit changed the message (this run owns it).
    var owned: Bool {
        get async throws { try await commit.value }
    }

    /// Returns once the turn owns its message; throws `TurnClaimLost` when something else changed it first.
    func confirm() async throws {
        guard try await owned else { throw TurnClaimLost() }
    }
}

/// The message changed status before this run could claim it (a stop request, another worker).
struct TurnClaimLost: Error {}

/// Produces the answer of a turn. The routing pipeline is one; `EchoResponder` is the
/// deterministic one used until it is wired in and by tests. Implementations check
/// `Task.isCancelled` between steps: a stop request cancels the task.
public protocol TurnResponder: Sendable {
    func respond(to request: TurnRequest, emitter: TurnEmitter) async throws -> TurnReply
}

/// Answers deterministically from the message text: `You said: <text>`, streamed word by word.
public struct EchoResponder: TurnResponder {
    /// Pause before each chunk (zero: as fast as Redis takes them).
    public var chunkDelay: Duration
    /// A message whose text starts with this prefix fails with `TurnFailure` (to exercise the error path).
    public var failurePrefix: String?

    public init(chunkDelay: Duration = .zero, failurePrefix: String? = "/fail") {
        self.chunkDelay = chunkDelay
        self.failurePrefix = failurePrefix
    }

    public static func reply(to text: String) -> String { "You said: \(text)" }

    public func respond(to request: TurnRequest, emitter: TurnEmitter) async throws -> TurnReply {
        let text = request.message.content
        if let failurePrefix, text.hasPrefix(failurePrefix) {
            throw TurnFailure(code: "responder_failed", message: "the responder was asked to fail")
        }
        try await emitter.emit(.status(.generating))
        let reply = Self.reply(to: text)
        for piece in Self.chunks(of: reply) {
            try Task.checkCancellation()
            if chunkDelay > .zero { try await Task.sleep(for: chunkDelay) }
            try await emitter.emit(.chunk(piece))
        }
        let words = { (s: String) in s.split(whereSeparator: \.isWhitespace).count }
        return TurnReply(
            content: reply, topic: "echo", language: nil, provider: "echo", model: "echo-1",
            usage: TurnUsage(promptTokens: words(text), completionTokens: words(reply)))
    }

    /// The reply split after each space, so joining the chunks gives the reply back exactly.
    public static func chunks(of reply: String) -> [String] {
        var pieces: [String] = []
        var current = ""
        for character in reply {
            current.append(character)
            if character == " " {
                pieces.append(current)
                current = ""
            }
        }
        if !current.isEmpty { pieces.append(current) }
        return pieces
    }
}
