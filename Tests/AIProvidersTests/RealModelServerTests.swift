import Foundation
import TestSupport
import Testing

@testable import AIProviders

/// Against the real llama.cpp server of `scripts/llm` (SmolLM2-135M and all-MiniLM-L6-v2).
/// Asserts the shape of what comes back, never the model's words.
@Suite(.enabled(if: LocalModelServer.enabled), .timeLimit(.minutes(30)))
struct RealModelServerTests {
    static func provider() async throws -> OpenAICompatibleProvider {
        try OpenAICompatibleProvider(configuration: .localModelServer(baseURL: try await LocalModelServer.baseURL()))
    }

    @Test func streamingHasTokensAFinishReasonAndUsage() async throws {
        let provider = try await Self.provider()
        let stream = try await provider.streamChat(ChatRequest(messages: [.user("Name three colours.")], maxTokens: 24))
        var tokens = 0
        var finishes: [FinishReason] = []
        var usage: TokenUsage?
        var afterFinish = 0
        for try await event in stream {
            switch event {
            case .token: tokens += 1; if !finishes.isEmpty { afterFinish += 1 }
            case .finished(let reason): finishes.append(reason)
            case .usage(let counted): usage = counted
            }
        }
        try await provider.shutdown()
        #expect(tokens > 1)
        #expect(afterFinish == 0)
        #expect(finishes.count == 1)
        #expect([FinishReason.stop, .length].contains(try #require(finishes.first)))
        let counted = try #require(usage)
        #expect(counted.promptTokens > 0)
        #expect(counted.completionTokens > 0 && counted.completionTokens <= 24)
    }

    @Test func stoppingEarlyClosesTheStream() async throws {
        let provider = try await Self.provider()
        let stream = try await provider.streamChat(ChatRequest(messages: [.user("Count from one to one hundred.")], maxTokens: 200))
        var tokens = 0
        for try await event in stream {
            if case .token = event { tokens += 1 }
            if tokens == 3 { break }
        }
        // The server is still usable afterwards.
        let again = try await provider.chat(ChatRequest(messages: [.user("Say hi.")], maxTokens: 4))
        try await provider.shutdown()
        #expect(tokens == 3)
        #expect(again.usage?.completionTokens ?? 0 > 0)
    }

    @Test func embeddingsHaveTheModelsDimensionAndRankMeaning() async throws {
        let provider = try await Self.provider()
        let result = try await provider.embed([
            "How do I reset my password?", "I forgot my login password", "What is the weather in Berlin tomorrow?",
        ])
        try await provider.shutdown()
        #expect(result.vectors.count == 3)
        #expect(result.vectors.allSatisfy { $0.count == 384 })
        func cosine(_ a: [Float], _ b: [Float]) -> Float {
            var dot: Float = 0, na: Float = 0, nb: Float = 0
            for i in a.indices { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i] }
            return dot / (na.squareRoot() * nb.squareRoot())
        }
        #expect(cosine(result.vectors[0], result.vectors[1]) > cosine(result.vectors[0], result.vectors[2]))
    }

    @Test func anUnknownModelIsAClientError() async throws {
        let provider = try await Self.provider()
        let error = await #expect(throws: AIProviderError.self) {
            _ = try await provider.chat(ChatRequest(messages: [.user("hi")], model: "no-such-model"))
        }
        try await provider.shutdown()
        #expect(error?.code == .httpStatus)
        #expect((400..<500).contains(error?.status ?? 0))
    }
}
