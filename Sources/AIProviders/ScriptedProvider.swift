import Foundation

/// A deterministic provider for unit tests: answers come from a script, not a model.
/// Each handler sees the request and returns what the model "says"; tokens are the answer split
/// at spaces (kept attached), with an optional pause between tokens so tests can stop mid-stream.
public struct ScriptedProvider: AIProvider {
    public struct Reply: Sendable {
        public var text: String
        public var finishReason: FinishReason
        public var usage: TokenUsage?
        /// Thrown instead of answering.
        public var error: AIProviderError?

        public init(text: String, finishReason: FinishReason = .stop, usage: TokenUsage? = nil, error: AIProviderError? = nil) {
            self.text = text
            self.finishReason = finishReason
            self.usage = usage ?? TokenUsage(promptTokens: 10, completionTokens: max(1, text.split(separator: " ").count))
            self.error = error
        }

        public static func failure(_ error: AIProviderError) -> Reply { Reply(text: "", error: error) }
    }

    public var name: String
    public var models: [ModelSlot: String]
    public var tokenDelay: Duration
    private let reply: @Sendable (ChatRequest) async throws -> Reply
    private let embedder: @Sendable (String) -> [Float]

    public init(
        name: String = "scripted", models: [ModelSlot: String] = [.chat: "scripted-chat", .sort: "scripted-sort", .plan: "scripted-plan", .embed: "scripted-embed"],
        tokenDelay: Duration = .zero,
        embed: @escaping @Sendable (String) -> [Float] = ScriptedProvider.bagOfWords,
        reply: @escaping @Sendable (ChatRequest) async throws -> Reply
    ) {
        self.name = name
        self.models = models
        self.tokenDelay = tokenDelay
        self.reply = reply
        self.embedder = embed
    }

    /// Always answers `text`.
    public static func constant(_ text: String) -> ScriptedProvider {
        ScriptedProvider { _ in Reply(text: text) }
    }

    public func model(for slot: ModelSlot) -> String { models[slot] ?? "scripted" }

    public func streamChat(_ request: ChatRequest) async throws -> ChatStream {
        let answer = try await reply(request)
        if let error = answer.error { throw error }
        let delay = tokenDelay
        let model = request.model ?? model(for: request.slot)
        let (events, continuation) = AsyncThrowingStream<ChatStreamEvent, any Error>.makeStream()
        let task = Task {
            do {
                for token in Self.tokens(answer.text) {
                    if delay > .zero { try await Task.sleep(for: delay) }
                    try Task.checkCancellation()
                    continuation.yield(.token(token))
                }
                continuation.yield(.finished(answer.finishReason))
                if let usage = answer.usage { continuation.yield(.usage(usage)) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return ChatStream(model: model, events: events)
    }

    public func chat(_ request: ChatRequest) async throws -> ChatCompletion {
        let answer = try await reply(request)
        if let error = answer.error { throw error }
        return ChatCompletion(
            text: answer.text, finishReason: answer.finishReason, usage: answer.usage,
            model: request.model ?? model(for: request.slot), latency: .zero
        )
    }

    public func embed(_ texts: [String], model: String?) async throws -> EmbeddingResult {
        EmbeddingResult(vectors: texts.map(embedder), model: model ?? self.model(for: .embed), usage: nil)
    }

    /// "a b c" → ["a ", "b ", "c"].
    public static func tokens(_ text: String) -> [String] {
        var tokens: [String] = []
        var current = ""
        for character in text {
            current.append(character)
            if character == " " {
                tokens.append(current)
                current = ""
            }
        }
        if !current.isEmpty { tokens.append(current) }
        return tokens
    }

    /// A 64-dimension hashed bag of lower-cased words: texts sharing words point the same way.
    @Sendable public static func bagOfWords(_ text: String) -> [Float] {
        var vector = [Float](repeating: 0, count: 64)
        for word in text.lowercased().split(whereSeparator: { !$0.isLetter && !$0.isNumber }) {
            var hash: UInt64 = 1_469_598_103_934_665_603
            for byte in word.utf8 { hash = (hash ^ UInt64(byte)) &* 1_099_511_628_211 }
            vector[Int(hash % 64)] += 1
        }
        return vector
    }
}
