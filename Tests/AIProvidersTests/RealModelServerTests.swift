import Foundation
import TestSupport
import Testing

@testable import AIProviders

/// Against the real llama.cpp server of `scripts/llm` (SmolLM2-135M and all-MiniLM-L6-v2).
/// Asserts the shape of what comes back, never the model's words.
@Suite(.enabled(if: LocalModelServer.enabled), .timeLimit(.minutes(30)))
struct RealModelServerTests {
    @Test func streamingHasTokensAFinishReasonAndUsage() async throws {
        var tokens = 0
        var finishes: [FinishReason] = []
        var usage: TokenUsage?
        var afterFinish = 0
        try await LocalModelServer.withProvider { provider in
            let stream = try await provider.streamChat(ChatRequest(messages: [.user("Name three colours.")], maxTokens: 24))
            for try await event in stream {
                switch event {
                case .token: tokens += 1; if !finishes.isEmpty { afterFinish += 1 }
                case .finished(let reason): finishes.append(reason)
                case .usage(let counted): usage = counted
                }
            }
        }
        #expect(tokens > 1)
        #expect(afterFinish == 0)
        #expect(finishes.count == 1)
        #expect([FinishReason.stop, .length].contains(try #require(finishes.first)))
        let counted = try #require(usage)
        #expect(counted.promptTokens > 0)
        #expect(counted.completionTokens > 0 && counted.completionTokens <= 24)
    }

    @Test func stoppingEarlyClosesTheStream() async throws {
        var tokens = 0
        let again = try await LocalModelServer.withProvider { provider in
            let stream = try await provider.streamChat(ChatRequest(messages: [.user("Count from one to one hundred.")], maxTokens: 200))
            for try await event in stream {
                if case .token = event { tokens += 1 }
                if tokens == 3 { break }
            }
            // The server is still usable afterwards.
            return try await provider.chat(ChatRequest(messages: [.user("Say hi.")], maxTokens: 4))
        }
        #expect(tokens == 3)
        #expect(again.usage?.completionTokens ?? 0 > 0)
    }

    @Test func embeddingsHaveTheModelsDimensionAndRankMeaning() async throws {
        let result = try await LocalModelServer.withProvider { provider in
            try await provider.embed([
                "How do I reset my password?", "I forgot my login password", "What is the weather in Berlin tomorrow?",
            ])
        }
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
        let error = try await LocalModelServer.withProvider { provider in
            await #expect(throws: AIProviderError.self) {
                _ = try await provider.chat(ChatRequest(messages: [.user("hi")], model: "no-such-model"))
            }
        }
        #expect(error?.code == .httpStatus)
        #expect((400..<500).contains(error?.status ?? 0))
    }
}
