import Foundation
import SwitchboardCore

/// Where the OpenAI-compatible server is and how patiently to talk to it.
///
/// Environment (see `init(environment:)`): `SB_AI_BASE_URL` (ends in `/v1`), `SB_AI_API_KEY`,
/// `SB_AI_MODEL` (default for every slot), `SB_AI_CHAT_MODEL`, `SB_AI_SORT_MODEL`,
/// `SB_AI_PLAN_MODEL`, `SB_AI_EMBED_MODEL`, `SB_AI_CONNECT_TIMEOUT`, `SB_AI_REQUEST_TIMEOUT`,
/// `SB_AI_STREAM_IDLE_TIMEOUT`, `SB_AI_STREAM_TIMEOUT` (seconds), `SB_AI_MAX_ATTEMPTS`,
/// `SB_AI_PROVIDER_NAME`.
public struct AIProviderConfiguration: Sendable, Hashable {
    /// The base URL the OpenAI paths hang off, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8089/v1`.
    public var baseURL: String
    /// Sent as `Authorization: Bearer`; nil for local servers that need none.
    public var apiKey: String?
    public var models: [ModelSlot: String]
    /// Name recorded with usage and in `complete` events.
    public var providerName: String
    public var connectTimeout: Duration
    /// A whole one-shot call (JSON chat, embeddings), per attempt.
    public var requestTimeout: Duration
    /// Longest silence inside a response (between streamed tokens).
    public var streamIdleTimeout: Duration
    /// A whole streamed answer.
    public var streamTimeout: Duration
    /// Retries of 429, 5xx and unreachable servers (full jitter; `maxRetryAfter` bounds a `Retry-After`).
    public var retry: RetryPolicy
    /// Connections to the provider's host at once (HTTP/1.1 carries one call each). A turn holds
    /// one for the whole streamed answer, so this bounds the turns a worker can have waiting on
    /// the provider; it matches the worker's default slots (`worker.concurrency`).
    public var maxConnections: Int

    public init(
        baseURL: String, apiKey: String? = nil, models: [ModelSlot: String], providerName: String = "openai-compatible",
        connectTimeout: Duration = .seconds(5), requestTimeout: Duration = .seconds(60),
        streamIdleTimeout: Duration = .seconds(30), streamTimeout: Duration = .seconds(300), retry: RetryPolicy = .init(),
        maxConnections: Int = 256
    ) {
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.models = models
        self.providerName = providerName
        self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout
        self.streamIdleTimeout = streamIdleTimeout
        self.streamTimeout = streamTimeout
        self.retry = retry
        self.maxConnections = maxConnections
    }

    /// One model for chat, sort and plan, and one for embeddings.
    public init(baseURL: String, apiKey: String? = nil, model: String, embedModel: String) {
        self.init(baseURL: baseURL, apiKey: apiKey, models: [.chat: model, .sort: model, .plan: model, .embed: embedModel])
    }

    /// Reads the `SB_AI_*` variables. nil when `SB_AI_BASE_URL` is not set (the caller picks a default).
    public init?(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        func value(_ name: String) -> String? {
            guard let raw = environment[name]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else { return nil }
            return raw
        }
        func seconds(_ name: String, default fallback: Duration) throws -> Duration {
            guard let raw = value(name) else { return fallback }
            guard let number = Double(raw), number > 0, number <= 86_400 else {
                throw AIProviderError(.misconfigured, "\(name) must be a number of seconds in (0, 86400], got '\(raw)'")
            }
            return .milliseconds(Int64(number * 1000))
        }
        guard let baseURL = value("SB_AI_BASE_URL") else { return nil }
        guard let url = URL(string: baseURL), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
            throw AIProviderError(.misconfigured, "SB_AI_BASE_URL must be an http(s) URL such as http://127.0.0.1:8089/v1, got '\(baseURL)'")
        }
        let fallbackModel = value("SB_AI_MODEL")
        var models: [ModelSlot: String] = [:]
        for slot in ModelSlot.allCases {
            let specific = value("SB_AI_\(slot.rawValue.uppercased())_MODEL")
            models[slot] = specific ?? (slot == .embed ? nil : fallbackModel)
        }
        guard models[.chat] != nil else {
            throw AIProviderError(.misconfigured, "SB_AI_MODEL (or SB_AI_CHAT_MODEL) is required when SB_AI_BASE_URL is set")
        }
        var retry = RetryPolicy()
        if let raw = value("SB_AI_MAX_ATTEMPTS") {
            guard let attempts = Int(raw), (1...10).contains(attempts) else {
                throw AIProviderError(.misconfigured, "SB_AI_MAX_ATTEMPTS must be 1...10, got '\(raw)'")
            }
            retry.maxAttempts = attempts
        }
        var maxConnections = 256
        if let raw = value("SB_AI_MAX_CONNECTIONS") {
            guard let connections = Int(raw), (1...4096).contains(connections) else {
                throw AIProviderError(.misconfigured, "SB_AI_MAX_CONNECTIONS must be 1...4096, got '\(raw)'")
            }
            maxConnections = connections
        }
        self.init(
            baseURL: baseURL, apiKey: value("SB_AI_API_KEY"), models: models,
            providerName: value("SB_AI_PROVIDER_NAME") ?? "openai-compatible",
            connectTimeout: try seconds("SB_AI_CONNECT_TIMEOUT", default: .seconds(5)),
            requestTimeout: try seconds("SB_AI_REQUEST_TIMEOUT", default: .seconds(60)),
            streamIdleTimeout: try seconds("SB_AI_STREAM_IDLE_TIMEOUT", default: .seconds(30)),
            streamTimeout: try seconds("SB_AI_STREAM_TIMEOUT", default: .seconds(300)),
            retry: retry, maxConnections: maxConnections
        )
    }

    /// The local llama.cpp server that `scripts/llm` starts (SmolLM2-135M for chat, MiniLM for embeddings).
    public static func localModelServer(baseURL: String = "http://127.0.0.1:8089/v1") -> Self {
        .init(baseURL: baseURL, model: "smollm2-135m", embedModel: "all-minilm-l6-v2")
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
