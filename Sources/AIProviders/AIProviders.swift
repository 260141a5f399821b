/// AIProviders owns every call Switchboard makes to a language model: the `AIProvider` protocol
/// (streaming chat as an `AsyncSequence` of tokens with the finish reason and usage, one-shot
/// chat with JSON output, embeddings), the OpenAI-compatible implementation over AsyncHTTPClient
/// that speaks to OpenAI, Ollama, vLLM and llama.cpp's server (`OpenAICompatibleProvider`), its
/// configuration (`AIProviderConfiguration`), typed errors (`AIProviderError`), and a deterministic
/// `ScriptedProvider` for unit tests.
import Foundation

/// What a model call is for. Each slot may use its own model: a small fast one to sort messages,
/// a stronger one to answer, an embedding model for the router.
public enum ModelSlot: String, Sendable, CaseIterable, Codable {
    case chat, sort, plan, embed
}

public struct ChatMessage: Sendable, Hashable, Codable {
    public enum Role: String, Sendable, Codable { case system, user, assistant }

    public var role: Role
    public var content: String

    public init(role: Role, content: String) {
        self.role = role
        self.content = content
    }

    public static func system(_ content: String) -> Self { .init(role: .system, content: content) }
    public static func user(_ content: String) -> Self { .init(role: .user, content: content) }
    public static func assistant(_ content: String) -> Self { .init(role: .assistant, content: content) }
}

public struct ChatRequest: Sendable, Hashable {
    public var messages: [ChatMessage]
    public var slot: ModelSlot
    /// Overrides the slot's configured model.
    public var model: String?
    public var temperature: Double?
    public var maxTokens: Int?
    /// Ask the server for a JSON object (`response_format: json_object`).
    public var jsonOutput: Bool

    public init(
        messages: [ChatMessage], slot: ModelSlot = .chat, model: String? = nil, temperature: Double? = nil,
        maxTokens: Int? = nil, jsonOutput: Bool = false
    ) {
        self.messages = messages
        self.slot = slot
        self.model = model
        self.temperature = temperature
        self.maxTokens = maxTokens
        self.jsonOutput = jsonOutput
    }
}

public struct TokenUsage: Sendable, Hashable, Codable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int { promptTokens + completionTokens }

    public init(promptTokens: Int, completionTokens: Int) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
    }

    public static let zero = TokenUsage(promptTokens: 0, completionTokens: 0)

    public static func + (lhs: Self, rhs: Self) -> Self {
        .init(promptTokens: lhs.promptTokens + rhs.promptTokens, completionTokens: lhs.completionTokens + rhs.completionTokens)
    }
}

/// Why the model stopped. Open-ended: servers may send values beyond OpenAI's four.
public struct FinishReason: RawRepresentable, Sendable, Hashable, Codable, ExpressibleByStringLiteral, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }

    public static let stop: Self = "stop"
    public static let length: Self = "length"
    public static let toolCalls: Self = "tool_calls"
    public static let contentFilter: Self = "content_filter"
    /// The stream ended without the server naming a reason.
    public static let unknown: Self = "unknown"
}

/// A finished chat call.
public struct ChatCompletion: Sendable, Hashable {
    public var text: String
    public var finishReason: FinishReason
    public var usage: TokenUsage?
    /// The model that answered, as the server names it.
    public var model: String
    /// Wall time of the call.
    public var latency: Duration

    public init(text: String, finishReason: FinishReason, usage: TokenUsage?, model: String, latency: Duration) {
        self.text = text
        self.finishReason = finishReason
        self.usage = usage
        self.model = model
        self.latency = latency
    }
}

public struct EmbeddingResult: Sendable, Hashable {
    /// One vector per input, in input order.
    public var vectors: [[Float]]
    public var model: String
    public var usage: TokenUsage?

    public init(vectors: [[Float]], model: String, usage: TokenUsage?) {
        self.vectors = vectors
        self.model = model
        self.usage = usage
    }
}

/// A language model service.
public protocol AIProvider: Sendable {
    /// A short name recorded with usage and in the `complete` event (e.g. "openai-compatible").
    var name: String { get }
    /// The model a slot uses when a request names none.
    func model(for slot: ModelSlot) -> String
    /// Streams the answer. Errors before the first token (connection, HTTP status) are thrown here,
    /// after retries; errors during the stream are thrown by the sequence.
    func streamChat(_ request: ChatRequest) async throws -> ChatStream
    /// The whole answer at once; with `jsonOutput` the text is a JSON object (see `chatJSON`).
    func chat(_ request: ChatRequest) async throws -> ChatCompletion
    /// Embeds every text with the `embed` slot's model (or `model`).
    func embed(_ texts: [String], model: String?) async throws -> EmbeddingResult
}

extension AIProvider {
    public func embed(_ texts: [String]) async throws -> EmbeddingResult {
        try await embed(texts, model: nil)
    }

    /// One-shot chat whose answer is decoded as `T`. Tolerates Markdown code fences and text
    /// around the object, which small models add even when asked not to.
    public func chatJSON<T: Decodable>(_ request: ChatRequest, as type: T.Type = T.self) async throws -> (value: T, completion: ChatCompletion) {
        var request = request
        request.jsonOutput = true
        let completion = try await chat(request)
        guard let data = JSONExtraction.firstObject(in: completion.text) else {
            throw AIProviderError(.invalidJSON, "the model's answer holds no JSON object: \(completion.text.prefix(200))")
        }
        do {
            return (try JSONDecoder().decode(T.self, from: data), completion)
        } catch {
            throw AIProviderError(.invalidJSON, "the model's JSON does not match \(T.self): \(error)")
        }
    }
}

/// Finds the JSON object in a model's answer.
public enum JSONExtraction {
    /// The first balanced `{...}` in `text` that parses as JSON, as UTF-8 data.
    public static func firstObject(in text: String) -> Data? {
        let bytes = Array(text.utf8)
        var start = 0
        while let open = bytes[start...].firstIndex(of: UInt8(ascii: "{")) {
            if let close = matchingBrace(bytes, from: open) {
                let data = Data(bytes[open...close])
                if (try? JSONSerialization.jsonObject(with: data)) is [String: Any] { return data }
            }
            start = open + 1
        }
        return nil
    }

    private static func matchingBrace(_ bytes: [UInt8], from open: Int) -> Int? {
        var depth = 0
        var inString = false
        var escaped = false
        for index in open..<bytes.count {
            let byte = bytes[index]
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"): depth += 1
            case UInt8(ascii: "}"):
                depth -= 1
                if depth == 0 { return index }
            default: break
            }
        }
        return nil
    }
}
