import Foundation
import SwitchboardCore
import TestSupport
import Testing

@testable import AIProviders

/// The provider against a scripted HTTP server: stream parsing, retries and typed errors.
@Suite struct OpenAICompatibleProviderTests {
    static func chunk(_ content: String?, finish: String? = nil) -> String {
        var delta: [String: Any] = [:]
        if let content { delta["content"] = content }
        let choice: [String: Any] = ["index": 0, "delta": delta, "finish_reason": finish ?? NSNull()]
        let object: [String: Any] = ["id": "c1", "object": "chat.completion.chunk", "model": "fake-model", "choices": [choice]]
        return "data: " + String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self) + "\n\n"
    }

    static let cannedStream =
        chunk("Hel") + chunk("lo, ") + chunk("wörld") + chunk(nil, finish: "stop")
        + "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15}}\n\n"
        + "data: [DONE]\n\n"

    static func provider(_ server: FakeOpenAIServer, attempts: Int = 3, idle: Duration = .seconds(10)) throws -> OpenAICompatibleProvider {
        var configuration = AIProviderConfiguration(baseURL: server.baseURL, apiKey: "sk-test", model: "fake-model", embedModel: "fake-embed")
        configuration.retry = RetryPolicy(maxAttempts: attempts, baseDelay: .milliseconds(20), maxDelay: .milliseconds(100))
        configuration.streamIdleTimeout = idle
        return try OpenAICompatibleProvider(configuration: configuration)
    }

    @Test func streamsTokensThenFinishReasonThenUsage() async throws {
        let server = try FakeOpenAIServer([.stream(Self.cannedStream, pieceSize: 5)])
        defer { server.stop() }
        let provider = try Self.provider(server)
        let stream = try await provider.streamChat(ChatRequest(messages: [.user("hi")]))
        var events: [ChatStreamEvent] = []
        for try await event in stream { events.append(event) }
        try await provider.shutdown()
        #expect(events == [
            .token("Hel"), .token("lo, "), .token("wörld"), .finished(.stop),
            .usage(TokenUsage(promptTokens: 12, completionTokens: 3)),
        ])
    }

    @Test func retriesAServerErrorThenSucceeds() async throws {
        let server = try FakeOpenAIServer([
            .status(500, body: "{\"error\":{\"message\":\"overloaded\"}}"),
            .status(503, body: "busy"),
            .stream(Self.cannedStream),
        ])
        defer { server.stop() }
        let provider = try Self.provider(server)
        let completion = try await provider.streamChat(ChatRequest(messages: [.user("hi")])).collect()
        try await provider.shutdown()
        #expect(completion.text == "Hello, wörld")
        #expect(completion.finishReason == .stop)
        #expect(try await server.requestCount() == 3)
    }

    @Test func aServerThatKeepsFailingSurfacesTheStatusAfterEveryAttempt() async throws {
        let server = try FakeOpenAIServer([.status(500, body: "{\"error\":{\"message\":\"model crashed\"}}")])
        defer { server.stop() }
        let provider = try Self.provider(server, attempts: 3)
        let error = await #expect(throws: AIProviderError.self) {
            _ = try await provider.chat(ChatRequest(messages: [.user("hi")]))
        }
        try await provider.shutdown()
        #expect(error?.code == .httpStatus)
        #expect(error?.status == 500)
        #expect(error?.attempts == 3)
        #expect(error?.message == "model crashed")
        #expect(try await server.requestCount() == 3)
    }

    @Test func aClientErrorIsNotRetried() async throws {
        let server = try FakeOpenAIServer([.status(400, body: "{\"error\":{\"message\":\"unknown model\"}}")])
        defer { server.stop() }
        let provider = try Self.provider(server)
        let error = await #expect(throws: AIProviderError.self) {
            _ = try await provider.streamChat(ChatRequest(messages: [.user("hi")]))
        }
        try await provider.shutdown()
        #expect(error?.code == .httpStatus)
        #expect(error?.status == 400)
        #expect(error?.attempts == 1)
        #expect(try await server.requestCount() == 1)
    }

    @Test func rateLimitHonoursRetryAfterThenGivesUpAsRateLimited() async throws {
        let server = try FakeOpenAIServer([.status(429, body: "slow down", retryAfter: "0")])
        defer { server.stop() }
        let provider = try Self.provider(server, attempts: 2)
        let error = await #expect(throws: AIProviderError.self) {
            _ = try await provider.embed(["a"])
        }
        try await provider.shutdown()
        #expect(error?.code == .rateLimited)
        #expect(error?.attempts == 2)
    }

    @Test func connectionRefusedIsATypedError() async throws {
        let port = try TestServices.freePort()
        var configuration = AIProviderConfiguration(baseURL: "http://127.0.0.1:\(port)/v1", model: "m", embedModel: "e")
        configuration.retry = RetryPolicy(maxAttempts: 2, baseDelay: .milliseconds(10), maxDelay: .milliseconds(20))
        let provider = try OpenAICompatibleProvider(configuration: configuration)
        let error = await #expect(throws: AIProviderError.self) {
            _ = try await provider.streamChat(ChatRequest(messages: [.user("hi")]))
        }
        try await provider.shutdown()
        #expect(error?.code == .connectionFailed)
        #expect(error?.attempts == 2)
    }

    @Test func aStalledStreamTimesOut() async throws {
        let server = try FakeOpenAIServer([.stall(seconds: 5)])
        defer { server.stop() }
        let provider = try Self.provider(server, attempts: 1, idle: .milliseconds(300))
        let error = await #expect(throws: AIProviderError.self) {
            _ = try await provider.streamChat(ChatRequest(messages: [.user("hi")])).collect()
        }
        try await provider.shutdown()
        #expect(error?.code == .timeout)
    }

    @Test func aStreamCutShortIsAnError() async throws {
        let server = try FakeOpenAIServer([.stream(Self.chunk("Hel") + Self.chunk("lo"))])
        defer { server.stop() }
        let provider = try Self.provider(server)
        let stream = try await provider.streamChat(ChatRequest(messages: [.user("hi")]))
        var tokens: [String] = []
        let error = await #expect(throws: AIProviderError.self) {
            for try await event in stream { if case .token(let text) = event { tokens.append(text) } }
        }
        try await provider.shutdown()
        #expect(tokens == ["Hel", "lo"])
        #expect(error?.code == .streamFailed)
    }

    @Test func jsonChatDecodesTheObjectInsideTheAnswer() async throws {
        struct Sorted: Decodable, Equatable { var topic: String; var multi: Bool }
        let answer = #"{"id":"x","object":"chat.completion","model":"fake-model","choices":[{"index":0,"message":{"role":"assistant","content":"```json\n{\"topic\": \"billing\", \"multi\": false}\n```"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":9}}"#
        let server = try FakeOpenAIServer([.json(answer), .json(answer.replacingOccurrences(of: "billing", with: "x\\\"y"))])
        defer { server.stop() }
        let provider = try Self.provider(server)
        let (value, completion) = try await provider.chatJSON(ChatRequest(messages: [.user("hi")], slot: .sort), as: Sorted.self)
        #expect(value == Sorted(topic: "billing", multi: false))
        #expect(completion.usage == TokenUsage(promptTokens: 5, completionTokens: 9))
        try await provider.shutdown()
    }

    @Test func embeddingsComeBackInInputOrder() async throws {
        let answer = #"{"object":"list","model":"fake-embed","data":[{"index":1,"embedding":[0,1]},{"index":0,"embedding":[1,0]}],"usage":{"prompt_tokens":4,"total_tokens":4}}"#
        let server = try FakeOpenAIServer([.json(answer)])
        defer { server.stop() }
        let provider = try Self.provider(server)
        let result = try await provider.embed(["first", "second"])
        try await provider.shutdown()
        #expect(result.vectors == [[1, 0], [0, 1]])
    }
}

@Suite struct AIProviderConfigurationTests {
    @Test func readsTheEnvironmentWithAModelPerSlot() throws {
        let configuration = try #require(try AIProviderConfiguration(environment: [
            "SB_AI_BASE_URL": "https://api.openai.com/v1", "SB_AI_API_KEY": "sk-1", "SB_AI_MODEL": "gpt-4o-mini",
            "SB_AI_SORT_MODEL": "gpt-4.1-nano", "SB_AI_EMBED_MODEL": "text-embedding-3-small", "SB_AI_REQUEST_TIMEOUT": "2.5",
            "SB_AI_MAX_ATTEMPTS": "4",
        ]))
        #expect(configuration.models == [.chat: "gpt-4o-mini", .plan: "gpt-4o-mini", .sort: "gpt-4.1-nano", .embed: "text-embedding-3-small"])
        #expect(configuration.apiKey == "sk-1")
        #expect(configuration.requestTimeout == .milliseconds(2500))
        #expect(configuration.retry.maxAttempts == 4)
    }

    @Test func absentWithoutABaseURLAndRefusesNonsense() throws {
        #expect(try AIProviderConfiguration(environment: [:]) == nil)
        #expect(throws: AIProviderError.self) { _ = try AIProviderConfiguration(environment: ["SB_AI_BASE_URL": "ftp://x", "SB_AI_MODEL": "m"]) }
        #expect(throws: AIProviderError.self) { _ = try AIProviderConfiguration(environment: ["SB_AI_BASE_URL": "http://x/v1"]) }
        #expect(throws: AIProviderError.self) {
            _ = try AIProviderConfiguration(environment: ["SB_AI_BASE_URL": "http://x/v1", "SB_AI_MODEL": "m", "SB_AI_REQUEST_TIMEOUT": "-1"])
        }
    }

    @Test func backoffGrowsAndStaysWithinBounds() {
        let policy = RetryPolicy(maxAttempts: 5, baseDelay: .milliseconds(100), maxDelay: .milliseconds(800))
        for attempt in 1...6 {
            let ceiling = min(800, 100 << (attempt - 1))
            for _ in 0..<50 {
                let delay = policy.delay(afterAttempt: attempt)
                #expect(delay >= .milliseconds(50) && delay <= .milliseconds(ceiling))
            }
        }
    }
}
