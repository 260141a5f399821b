import Foundation

/// The OpenAI chat and embeddings formats, as far as Switchboard reads and writes them.
enum OpenAIWire {
    struct ChatBody: Encodable {
        struct StreamOptions: Encodable { var include_usage: Bool }
        struct ResponseFormat: Encodable { var type: String }

        var model: String
        var messages: [ChatMessage]
        var stream: Bool
        var stream_options: StreamOptions?
        var temperature: Double?
        var max_tokens: Int?
        var response_format: ResponseFormat?
    }

    struct Usage: Decodable {
        var prompt_tokens: Int?
        var completion_tokens: Int?

        var tokenUsage: TokenUsage { TokenUsage(promptTokens: prompt_tokens ?? 0, completionTokens: completion_tokens ?? 0) }
    }

    struct ErrorBody: Decodable {
        struct Detail: Decodable { var message: String? }
        var error: Detail?
    }

    /// A streamed `chat.completion.chunk`; also decodes a non-streamed `chat.completion`.
    struct ChatChunk: Decodable {
        struct Content: Decodable { var content: String? }
        struct Choice: Decodable {
            var delta: Content?
            var message: Content?
            var finish_reason: String?
        }
        struct ErrorDetail: Decodable { var message: String? }

        var model: String?
        var choices: [Choice]?
        var usage: Usage?
        var error: ErrorDetail?
    }

    struct EmbeddingBody: Encodable {
        var model: String
        var input: [String]
        var encoding_format = "float"
    }

    struct EmbeddingResponse: Decodable {
        struct Item: Decodable {
            var index: Int?
            var embedding: [Float]
        }
        var data: [Item]
        var model: String?
        var usage: Usage?
    }

    /// The error message inside an error response body, or the body itself, shortened.
    static func errorMessage(_ body: [UInt8]) -> String {
        if let decoded = try? JSONDecoder().decode(ErrorBody.self, from: Data(body)), let message = decoded.error?.message {
            return message
        }
        let text = String(decoding: body.prefix(300), as: UTF8.self)
        return text.isEmpty ? "empty body" : text
    }
}
