import Foundation

/// One piece of a streamed answer.
public enum ChatStreamEvent: Sendable, Hashable {
    /// Text to append to the answer.
    case token(String)
    /// The model stopped; comes once, after the last token.
    case finished(FinishReason)
    /// Token counts; servers send it after the finish reason when asked to (may be missing).
    case usage(TokenUsage)
}

/// A streamed chat answer: tokens, then the finish reason and usage. Iterate it once.
/// Ending the iteration early (or cancelling the task) closes the HTTP request.
public struct ChatStream: AsyncSequence, Sendable {
    public typealias Element = ChatStreamEvent

    /// The model asked for (the server may report a more precise name in `ChatCompletion.model`).
    public let model: String
    private let events: AsyncThrowingStream<ChatStreamEvent, any Error>
    private let started: ContinuousClock.Instant

    public init(model: String, events: AsyncThrowingStream<ChatStreamEvent, any Error>, started: ContinuousClock.Instant = .now) {
        self.model = model
        self.events = events
        self.started = started
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncThrowingStream<ChatStreamEvent, any Error>.AsyncIterator
        /// Throws `CancellationError` when the task is cancelled (a plain stream would just end,
        /// and a cut-off answer would pass for a whole one).
        public mutating func next() async throws -> ChatStreamEvent? {
            let event = try await base.next()
            if event == nil { try Task.checkCancellation() }
            return event
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: events.makeAsyncIterator()) }

    /// Reads the whole stream, calling `onToken` for each token.
    public func collect(onToken: (String) async throws -> Void = { _ in }) async throws -> ChatCompletion {
        var text = ""
        var finish: FinishReason?
        var usage: TokenUsage?
        for try await event in self {
            switch event {
            case .token(let token):
                text += token
                try await onToken(token)
            case .finished(let reason): finish = reason
            case .usage(let counted): usage = counted
            }
        }
        return ChatCompletion(text: text, finishReason: finish ?? .unknown, usage: usage, model: model, latency: .now - started)
    }
}
