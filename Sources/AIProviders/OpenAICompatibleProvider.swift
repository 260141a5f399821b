import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import SwitchboardCore

/// Speaks the OpenAI HTTP API (`/chat/completions`, streamed or not, and `/embeddings`), which
/// OpenAI, Ollama, vLLM and llama.cpp's server all serve. Retries 429, 5xx and unreachable
/// servers with backoff and jitter before any token has arrived; never retries mid-stream (the
/// user has seen the tokens). Owns its `HTTPClient`: call `shutdown()` when done.
public final class OpenAICompatibleProvider: AIProvider {
    public let configuration: AIProviderConfiguration
    public var name: String { configuration.providerName }
    private let client: HTTPClient
    private let logger: Logger
    private let chatURL: String
    private let embeddingsURL: String

    public init(configuration: AIProviderConfiguration, logger: Logger = Logger(label: "switchboard.ai")) throws {
        guard let url = URL(string: configuration.baseURL), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
            throw AIProviderError(.misconfigured, "base URL must be http(s)://host[:port]/path, got '\(configuration.baseURL)'")
        }
        self.configuration = configuration
        self.logger = logger
        var base = configuration.baseURL
        while base.hasSuffix("/") { base.removeLast() }
        chatURL = base + "/chat/completions"
        embeddingsURL = base + "/embeddings"

        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.timeout = .init(
            connect: .milliseconds(configuration.connectTimeout.milliseconds),
            read: .milliseconds(configuration.streamIdleTimeout.milliseconds)
        )
        // Our own retry loop decides (with the request's budget); the pool must not keep reconnecting.
        httpConfiguration.connectionPool.retryConnectionEstablishment = false
        // async-http-client's default is 8 per host: with a streaming provider, 8 turns at once.
        httpConfiguration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = configuration.maxConnections
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
    }

    public func shutdown() async throws {
        try await client.shutdown()
    }

    public func model(for slot: ModelSlot) -> String {
        configuration.models[slot] ?? configuration.models[.chat] ?? ""
    }

    // MARK: chat

    public func streamChat(_ request: ChatRequest) async throws -> ChatStream {
        let model = try resolvedModel(request.model, slot: request.slot)
        let body = OpenAIWire.ChatBody(
            model: model, messages: request.messages, stream: true, stream_options: .init(include_usage: true),
            temperature: request.temperature, max_tokens: request.maxTokens,
            response_format: request.jsonOutput ? .init(type: "json_object") : nil
        )
        let started = ContinuousClock.now
        let deadline = NIODeadline.now() + .milliseconds(configuration.streamTimeout.milliseconds)
        let span = ProviderTracing.start("chat_stream", provider: name, model: model)
        let response: HTTPClientResponse
        do {
            response = try await send(url: chatURL, body: try JSONEncoder().encode(body), deadline: deadline, what: "chat stream")
        } catch {
            ProviderTracing.end(span, error: error)
            throw error
        }
        let logger = self.logger
        let (events, continuation) = AsyncThrowingStream<ChatStreamEvent, any Error>.makeStream(bufferingPolicy: .unbounded)
        let reader = Task {
            do {
                try await Self.readStream(response.body, into: continuation)
                continuation.finish()
                ProviderTracing.end(span, error: nil)
            } catch {
                let mapped = Self.mapStreamError(error)
                logger.debug("chat stream ended with an error", metadata: ["error": "\(mapped)"])
                continuation.finish(throwing: mapped)
                ProviderTracing.end(span, error: mapped)
            }
        }
        continuation.onTermination = { _ in reader.cancel() }
        return ChatStream(model: model, events: events, started: started)
    }

    private static func readStream(
        _ body: HTTPClientResponse.Body, into continuation: AsyncThrowingStream<ChatStreamEvent, any Error>.Continuation
    ) async throws {
        var parser = ServerSentEventParser()
        var finished = false
        var sawDone = false
        let decoder = JSONDecoder()
        func handle(_ event: ServerSentEvent) throws {
            let data = event.data.trimmingCharacters(in: .whitespaces)
            if data == "[DONE]" { sawDone = true; return }
            let chunk: OpenAIWire.ChatChunk
            do {
                chunk = try decoder.decode(OpenAIWire.ChatChunk.self, from: Data(data.utf8))
            } catch {
                throw AIProviderError(.invalidResponse, "a stream event is not a chat.completion.chunk: \(data.prefix(200))")
            }
            if let error = chunk.error {
                throw AIProviderError(.streamFailed, error.message ?? "the server reported an error in the stream")
            }
            for choice in chunk.choices ?? [] {
                if let text = choice.delta?.content ?? choice.message?.content, !text.isEmpty {
                    continuation.yield(.token(text))
                }
                if let reason = choice.finish_reason, !finished {
                    finished = true
                    continuation.yield(.finished(FinishReason(rawValue: reason)))
                }
            }
            if let usage = chunk.usage { continuation.yield(.usage(usage.tokenUsage)) }
        }
        for try await buffer in body {
            try Task.checkCancellation()
            for event in try parser.feed(buffer.readableBytesView) { try handle(event) }
            if sawDone { break }
        }
        if !sawDone, let event = parser.finish() { try handle(event) }
        if !finished {
            guard sawDone else {
                throw AIProviderError(.streamFailed, "the stream ended before the model finished")
            }
            continuation.yield(.finished(.unknown))
        }
    }

    public func chat(_ request: ChatRequest) async throws -> ChatCompletion {
        let model = try resolvedModel(request.model, slot: request.slot)
        let body = OpenAIWire.ChatBody(
            model: model, messages: request.messages, stream: false, stream_options: nil,
            temperature: request.temperature, max_tokens: request.maxTokens,
            response_format: request.jsonOutput ? .init(type: "json_object") : nil
        )
        let started = ContinuousClock.now
        let timeout = TimeAmount.milliseconds(configuration.requestTimeout.milliseconds)
        let bytes = try await ProviderTracing.call("chat", provider: name, model: model) {
            try await sendCollecting(url: chatURL, body: try JSONEncoder().encode(body), timeout: timeout, what: "chat")
        }
        guard let decoded = try? JSONDecoder().decode(OpenAIWire.ChatChunk.self, from: Data(bytes)), let choice = decoded.choices?.first else {
            throw AIProviderError(.invalidResponse, "not a chat.completion: \(String(decoding: bytes.prefix(200), as: UTF8.self))")
        }
        return ChatCompletion(
            text: choice.message?.content ?? choice.delta?.content ?? "",
            finishReason: choice.finish_reason.map(FinishReason.init(rawValue:)) ?? .unknown,
            usage: decoded.usage?.tokenUsage, model: decoded.model ?? model, latency: .now - started
        )
    }

    // MARK: embeddings

    public func embed(_ texts: [String], model: String?) async throws -> EmbeddingResult {
        let model = try resolvedModel(model, slot: .embed)
        if texts.isEmpty { return EmbeddingResult(vectors: [], model: model, usage: nil) }
        let body = OpenAIWire.EmbeddingBody(model: model, input: texts)
        let timeout = TimeAmount.milliseconds(configuration.requestTimeout.milliseconds)
        let bytes = try await ProviderTracing.call("embed", provider: name, model: model) {
            try await sendCollecting(url: embeddingsURL, body: try JSONEncoder().encode(body), timeout: timeout, what: "embeddings")
        }
        guard let decoded = try? JSONDecoder().decode(OpenAIWire.EmbeddingResponse.self, from: Data(bytes)) else {
            throw AIProviderError(.invalidResponse, "not an embeddings response: \(String(decoding: bytes.prefix(200), as: UTF8.self))")
        }
        let ordered = decoded.data.enumerated().sorted { ($0.element.index ?? $0.offset) < ($1.element.index ?? $1.offset) }
        guard ordered.count == texts.count else {
            throw AIProviderError(.invalidResponse, "asked for \(texts.count) embeddings, got \(ordered.count)")
        }
        return EmbeddingResult(vectors: ordered.map(\.element.embedding), model: decoded.model ?? model, usage: decoded.usage?.tokenUsage)
    }

    // MARK: transport

    private func resolvedModel(_ explicit: String?, slot: ModelSlot) throws -> String {
        if let explicit, !explicit.isEmpty { return explicit }
        guard let model = configuration.models[slot] ?? (slot == .embed ? nil : configuration.models[.chat]), !model.isEmpty else {
            throw AIProviderError(.misconfigured, "no model configured for the \(slot.rawValue) slot")
        }
        return model
    }

    private func makeRequest(url: String, body: Data) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: "application/json, text/event-stream")
        if let key = configuration.apiKey, !key.isEmpty {
            request.headers.add(name: "Authorization", value: "Bearer \(key)")
        }
        request.body = .bytes(ByteBuffer(bytes: body))
        return request
    }

    /// Runs `operation` until it succeeds, fails for good, or the policy's attempts are used up;
    /// waits with backoff (at least the server's `Retry-After`) in between.
    private func withRetries<T>(_ what: String, policy: RetryPolicy, _ operation: () async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await operation()
            } catch let error as CancellationError {
                throw error
            } catch {
                if Task.isCancelled { throw CancellationError() }
                var failure = Self.mapTransportError(error)
                failure.attempts = attempt
                guard failure.isRetryable, attempt < policy.maxAttempts else { throw failure }
                var wait = policy.delay(afterAttempt: attempt)
                if let retryAfter = failure.retryAfter {
                    guard retryAfter <= policy.maxRetryAfter else { throw failure }
                    wait = max(wait, retryAfter)
                }
                logger.notice(
                    "AI provider call failed; retrying",
                    metadata: ["call": "\(what)", "attempt": "\(attempt)", "error": "\(failure)", "wait_ms": "\(wait.milliseconds)"]
                )
                try await Task.sleep(for: wait)
            }
        }
    }

    /// One attempt: returns the response once a 2xx head arrives, its body unread.
    private func execute(url: String, body: Data, deadline: NIODeadline) async throws -> HTTPClientResponse {
        let response = try await client.execute(makeRequest(url: url, body: body), deadline: deadline, logger: logger)
        if (200..<300).contains(response.status.code) { return response }
        let errorBody = (try? await response.body.collect(upTo: 64 << 10)).map { Array($0.readableBytesView) } ?? []
        let status = Int(response.status.code)
        var failure = AIProviderError(status == 429 ? .rateLimited : .httpStatus, OpenAIWire.errorMessage(errorBody), status: status)
        failure.retryAfter = Self.retryAfter(response.headers)
        throw failure
    }

    /// Retries until a 2xx head arrives; the body is left for the caller to stream.
    private func send(url: String, body: Data, deadline: NIODeadline, what: String) async throws -> HTTPClientResponse {
        try await withRetries(what, policy: configuration.retry) {
            try await execute(url: url, body: body, deadline: deadline)
        }
    }

    /// Retries whole calls (head and body), each attempt with the full timeout.
    private func sendCollecting(url: String, body: Data, timeout: TimeAmount, what: String) async throws -> [UInt8] {
        try await withRetries(what, policy: configuration.retry) {
            let response = try await execute(url: url, body: body, deadline: .now() + timeout)
            return Array(try await response.body.collect(upTo: 32 << 20).readableBytesView)
        }
    }

    private static func retryAfter(_ headers: HTTPHeaders) -> Duration? {
        guard let value = headers.first(name: "Retry-After"), let seconds = Double(value.trimmingCharacters(in: .whitespaces)), seconds >= 0 else {
            return nil
        }
        return .milliseconds(Int64(seconds * 1000))
    }

    static func mapTransportError(_ error: any Error) -> AIProviderError {
        if let error = error as? AIProviderError { return error }
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .writeTimeout:
                return AIProviderError(.timeout, "no answer in time (\(error))")
            case .connectTimeout:
                return AIProviderError(.connectionFailed, "connecting timed out")
            case .remoteConnectionClosed, .cancelled:
                return AIProviderError(.connectionFailed, "the server closed the connection (\(error))")
            case .invalidURL, .emptyHost, .emptyScheme:
                return AIProviderError(.misconfigured, "invalid provider URL (\(error))")
            case .bodyLengthMismatch, .invalidProxyResponse:
                return AIProviderError(.invalidResponse, "\(error)")
            default:
                return AIProviderError(.connectionFailed, "\(error)")
            }
        }
        if error is IOError || error is ChannelError || String(reflecting: type(of: error)).contains("ConnectionError") {
            return AIProviderError(.connectionFailed, "cannot reach the server (\(error))")
        }
        return AIProviderError(.connectionFailed, "\(error)")
    }

    static func mapStreamError(_ error: any Error) -> any Error {
        if error is CancellationError { return error }
        if let error = error as? AIProviderError { return error }
        if let error = error as? HTTPClientError, error == .deadlineExceeded || error == .readTimeout {
            return AIProviderError(.timeout, "the stream stalled (\(error))")
        }
        if error is ServerSentEventParser.LineTooLong {
            return AIProviderError(.invalidResponse, "a stream line exceeds the limit")
        }
        return AIProviderError(.streamFailed, "the stream broke off (\(error))")
    }
}
