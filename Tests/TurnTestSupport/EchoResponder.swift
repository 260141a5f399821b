/// A deterministic responder for tests of the turn path: answers `You said: <text>`, streamed
/// word by word, and fails on request.
import AIProviders
import Foundation
import Pipeline
import SwitchboardCore
import Turns

public struct EchoResponder: TurnResponder {
    /// Pause before each chunk (zero: as fast as Redis takes them).
    public var chunkDelay: Duration
    /// A message whose text starts with this prefix fails with `responder_failed` (the error path).
    public var failurePrefix: String?
    public var earlierMessages: Int { 11 }

    public init(chunkDelay: Duration = .zero, failurePrefix: String? = "/fail") {
        self.chunkDelay = chunkDelay
        self.failurePrefix = failurePrefix
    }

    public static func reply(to text: String) -> String { "You said: \(text)" }

    public func respond(to request: TurnRequest, events: any TurnEventSink) async throws -> TurnOutcome {
        let text = request.message.content
        if let failurePrefix, text.hasPrefix(failurePrefix) {
            throw PipelineError("responder_failed", "the responder was asked to fail")
        }
        try await events.emit(.status(.generating))
        let reply = Self.reply(to: text)
        for piece in Self.chunks(of: reply) {
            try Task.checkCancellation()
            if chunkDelay > .zero { try await Task.sleep(for: chunkDelay) }
            try await events.emit(.chunk(piece))
        }
        let words = { (s: String) in s.split(whereSeparator: \.isWhitespace).count }
        return TurnOutcome(
            reply: reply, classification: Classification(topic: "echo", source: .fallback), provider: "echo", model: "echo-1",
            usage: TokenUsage(promptTokens: words(text), completionTokens: words(reply)), tasks: [:])
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
