/// The OpenAI-compatible endpoint under `/v1`: `POST /v1/chat/completions` (non-streaming and
/// `stream: true`) and `GET /v1/models`, authenticated by a Switchboard API key as the bearer.
/// Each request starts a new `api` chat holding the request's earlier messages as answered
/// history, hands its last (user) message to the channel intake like any other turn, and follows
/// the turn's stream to its end. Errors on `/v1` use OpenAI's shape
/// (`{"error": {"message", "type", "param", "code"}}`): that is the compatibility contract.
import Channels
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Storage
import SwitchboardCore
import Turns

/// An error answered in OpenAI's shape.
struct OpenAIError: Error, Sendable {
    var status: HTTPResponse.Status
    var message: String
    var type: String
    var param: String?
    var code: String?

    static func invalid(_ param: String?, _ message: String, code: String = "invalid_value") -> OpenAIError {
        OpenAIError(status: .badRequest, message: message, type: "invalid_request_error", param: param, code: code)
    }

    struct Body: Encodable {
        struct Detail: Encodable {
            var message: String
            var type: String
            var param: String?
            var code: String?

            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(message, forKey: .message)
                try container.encode(type, forKey: .type)
                try container.encode(param, forKey: .param)
                try container.encode(code, forKey: .code)
            }

            enum CodingKeys: String, CodingKey { case message, type, param, code }
        }

        var error: Detail
    }

    var body: Body { Body(error: .init(message: message, type: type, param: param, code: code)) }

    var response: Response {
        let data = (try? APIJSON.encoder.encode(body)) ?? Data(#"{"error":{"message":"internal error","type":"server_error"}}"#.utf8)
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// OpenAI's error for a Switchboard error (from the authenticator, the rate limits, the intake).
    init(status: Int, code: String, message: String) {
        self.status = HTTPResponse.Status(code: status)
        self.message = message
        self.param = nil
        switch status {
        case 401:
            type = "invalid_request_error"
            self.code = "invalid_api_key"
        case 429:
            type = "rate_limit_error"
            self.code = "rate_limit_exceeded"
        case 400..<500:
            type = "invalid_request_error"
            self.code = code
        default:
            type = "server_error"
            self.code = code
        }
    }

    init(status: HTTPResponse.Status, message: String, type: String, param: String?, code: String?) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    /// The answer to a turn that ended with `error` before anything was streamed.
    static func turnFailed(_ event: TurnErrorEvent) -> OpenAIError {
        switch event.code {
        case "queue_unavailable":
            return OpenAIError(status: .serviceUnavailable, message: event.message, type: "server_error", param: nil, code: event.code)
        case "cancelled", "message_deleted":
            return OpenAIError(status: .conflict, message: event.message, type: "invalid_request_error", param: nil, code: event.code)
        default:
            return OpenAIError(status: .internalServerError, message: event.message, type: "server_error", param: nil, code: event.code)
        }
    }
}

/// Gives every error on `/v1` OpenAI's shape: errors thrown inside, and the Switchboard-shaped
/// answers of the middleware it wraps (authentication, rate limits). On the router as a whole
/// (`onlyUnderV1`) it gives the same shape to what no `/v1` route answers: an unknown path (404)
/// or method (405).
struct OpenAIErrorMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    var onlyUnderV1 = false

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if onlyUnderV1 {
            let path = request.uri.path
            guard path == "/v1" || path.hasPrefix("/v1/") else { return try await next(request, context) }
        }
        let response: Response
        do {
            response = try await next(request, context)
        } catch let error as OpenAIError {
            return error.response
        } catch {
            response = JSONErrorMiddleware<Context>.response(for: error, request: request, context: context)
        }
        guard response.status.code >= 400 else { return response }
        return try await Self.translated(response)
    }

    /// A Switchboard error answer (`{"error": {"code", "message", "status"}}`) in OpenAI's shape,
    /// its other headers (rate limits, `WWW-Authenticate`) kept; any other answer as it was.
    static func translated(_ response: Response) async throws -> Response {
        let collector = CollectingBodyWriter()
        try await response.body.write(collector)
        let bytes = collector.buffer
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView)) as? [String: Any],
              let detail = object["error"] as? [String: Any], detail["type"] == nil,
              let code = detail["code"] as? String, let message = detail["message"] as? String
        else { return Response(status: response.status, headers: response.headers, body: .init(byteBuffer: bytes)) }
        var translated = OpenAIError(status: Int(response.status.code), code: code, message: message).response
        for field in response.headers where field.name != .contentType && field.name != .contentLength {
            translated.headers.append(field)
        }
        return translated
    }
}

/// A validated `POST /v1/chat/completions` body.
struct ChatCompletionRequest: Sendable, Equatable {
    var model: String
    var stream: Bool
    var includeUsage: Bool
    /// The messages before the last one.
    var history: [InboundMessage.Earlier]
    /// The last message's text (a user message).
    var question: String

    /// Checks everything before anything is stored: a bad body is a 400 naming the field.
    static func parse(_ bytes: ByteBuffer, maxCharacters: Int) throws -> ChatCompletionRequest {
        guard bytes.readableBytes > 0 else { throw OpenAIError.invalid(nil, "a JSON request body is required") }
        let parsed: JSONValue
        do {
            parsed = try JSONDecoder().decode(JSONValue.self, from: Data(bytes.readableBytesView))
        } catch {
            throw OpenAIError.invalid(nil, "the request body is not valid JSON", code: "invalid_json")
        }
        guard case .object(let object) = parsed else { throw OpenAIError.invalid(nil, "the request body must be a JSON object") }

        var model = "switchboard"
        switch object["model"] {
        case nil, .null?: break
        case .string(let name)? where !name.isEmpty && name.count <= 200: model = name
        default: throw OpenAIError.invalid("model", "model must be a non-empty string")
        }
        let stream = try flag(object["stream"], "stream")
        var includeUsage = false
        switch object["stream_options"] {
        case nil, .null?: break
        case .object(let options)?: includeUsage = try flag(options["include_usage"], "stream_options.include_usage")
        default: throw OpenAIError.invalid("stream_options", "stream_options must be an object")
        }
        switch object["n"] {
        case nil, .null?, .int(1)?, .double(1)?: break
        default: throw OpenAIError.invalid("n", "only n = 1 is supported")
        }

        guard let rawMessages = object["messages"] else {
            throw OpenAIError.invalid("messages", "messages is required", code: "missing_required_parameter")
        }
        guard case .array(let list) = rawMessages, !list.isEmpty else {
            throw OpenAIError.invalid("messages", "messages must be a non-empty array")
        }
        var messages: [InboundMessage.Earlier] = []
        for (index, item) in list.enumerated() {
            let param = "messages[\(index)]"
            guard case .object(let message) = item else { throw OpenAIError.invalid(param, "\(param) must be an object") }
            guard case .string(let roleName)? = message["role"] else {
                throw OpenAIError.invalid("\(param).role", "\(param).role is required")
            }
            let role: MessageRole
            switch roleName {
            case "user": role = .user
            case "assistant": role = .assistant
            case "system", "developer": role = .system
            default:
                throw OpenAIError.invalid("\(param).role", "\(param).role must be one of system, user, assistant (got '\(roleName)')")
            }
            let content = try text(of: message["content"], param: "\(param).content")
            guard content.count <= maxCharacters else {
                throw OpenAIError.invalid("\(param).content", "\(param).content is longer than \(maxCharacters) characters")
            }
            messages.append(.init(role: role, content: content))
        }
        guard let last = messages.last, last.role == .user else {
            throw OpenAIError.invalid("messages[\(list.count - 1)].role", "the last message must have role user")
        }
        guard !last.content.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw OpenAIError.invalid("messages[\(list.count - 1)].content", "the last message must not be empty")
        }
        return ChatCompletionRequest(
            model: model, stream: stream, includeUsage: includeUsage, history: Array(messages.dropLast()), question: last.content)
    }

    private static func flag(_ value: JSONValue?, _ param: String) throws -> Bool {
        switch value {
        case nil, .null?: return false
        case .bool(let flag)?: return flag
        default: throw OpenAIError.invalid(param, "\(param) must be a boolean")
        }
    }

    /// A message's content: a string, or an array of `{"type": "text", "text": ...}` parts joined.
    private static func text(of value: JSONValue?, param: String) throws -> String {
        if case .string(let string)? = value { return string }
        guard case .array(let parts)? = value else {
            throw OpenAIError.invalid(param, "\(param) must be a string or an array of text parts")
        }
        var texts: [String] = []
        for (index, part) in parts.enumerated() {
            guard case .object(let fields) = part, fields["type"] == .string("text"), case .string(let text)? = fields["text"] else {
                throw OpenAIError.invalid("\(param)[\(index)]", "\(param)[\(index)] must be a part {\"type\": \"text\", \"text\": string}")
            }
            texts.append(text)
        }
        return texts.joined(separator: "\n")
    }
}

/// The handlers of `/v1`.
struct OpenAICompatibleAPI: Sendable {
    let dependencies: APIDependencies
    let hub: TurnStreamHub
    /// The one model id `/v1/models` lists (any name is accepted and echoed back).
    static let modelID = "switchboard"
    static let messageIDHeader = HTTPField.Name("X-Switchboard-Message-Id")!
    static let chatIDHeader = HTTPField.Name("X-Switchboard-Chat-Id")!

    /// GET /v1/models
    func models(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        _ = try context.requireCaller()
        return try APIJSON.response(OpenAIModelList(data: [.init(id: Self.modelID, object: "model", created: 1_700_000_000, ownedBy: "switchboard")]))
    }

    /// POST /v1/chat/completions
    func chatCompletions(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        var request = request
        let settings = dependencies.settings
        if let contentType = request.headers[.contentType], !contentType.lowercased().contains("json") {
            throw OpenAIError(status: .unsupportedMediaType, message: "Content-Type must be application/json", type: "invalid_request_error", param: nil, code: "unsupported_media_type")
        }
        let body = try await APIJSON.collect(&request, maxBytes: settings.maxBodyBytes)
        let completion = try ChatCompletionRequest.parse(body, maxCharacters: settings.maxMessageCharacters)

        let inbound = InboundMessage(
            ownerID: caller.user.id, channel: .api, content: completion.question,
            chat: .newWithHistory(title: nil, history: completion.history))
        let message = try await dependencies.intake.accept(inbound, logger: context.logger).message
        var follower = TurnFollower(hub: hub, messages: dependencies.stores.messages, messageID: message.id)
        // The streamed answer's body takes the follower over; any other way out ends it here.
        var handedOver = false
        defer { if !handedOver { follower.cancel() } }
        var headers: HTTPFields = [Self.messageIDHeader: "\(message.id)", Self.chatIDHeader: "\(message.chatID)"]
        let id = "chatcmpl-sb\(message.id)"
        let created = Int(Date().timeIntervalSince1970)

        if !completion.stream {
            var streamed = ""
            while true {
                for event in try await follower.next(block: settings.heartbeatInterval) {
                    switch event {
                    case .chunk(let chunk):
                        streamed += chunk.text
                    case .complete(let done):
                        let text = try await follower.replyText(done, ownerID: caller.user.id, streamed: streamed)
                        let answer = OpenAIChatCompletion(
                            id: id, created: created, model: completion.model,
                            choices: [.init(index: 0, message: .init(role: "assistant", content: text), finishReason: "stop")],
                            usage: OpenAIUsage(done.usage))
                        return try APIJSON.response(answer, headers: headers)
                    case .error(let failure):
                        var response = OpenAIError.turnFailed(failure).response
                        response.headers.append(contentsOf: headers)
                        return response
                    default:
                        continue
                    }
                }
            }
        }

        // Streaming: wait for the first chunk (or the end) before answering, so a turn that fails
        // at once still gets an HTTP error status.
        var pending: [TurnEvent] = []
        waiting: while true {
            for event in try await follower.next(block: settings.heartbeatInterval) {
                switch event {
                case .error(let failure) where pending.isEmpty:
                    var response = OpenAIError.turnFailed(failure).response
                    response.headers.append(contentsOf: headers)
                    return response
                case .chunk, .complete, .error:
                    pending.append(event)
                default:
                    continue
                }
            }
            if !pending.isEmpty { break waiting }
        }
        headers[.contentType] = "text/event-stream; charset=utf-8"
        headers[.cacheControl] = "no-cache"
        headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
        let heartbeat = settings.heartbeatInterval
        let model = completion.model
        let includeUsage = completion.includeUsage
        let ownerID = caller.user.id
        let logger = context.logger
        let firstEvents = pending
        handedOver = true
        let streamFollower = follower
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            var follower = streamFollower
            defer { follower.cancel() }
            let frames = ChunkFrames(id: id, created: created, model: model)
            var buffer = ByteBuffer()
            frames.append(ChunkFrames.Delta(role: "assistant", content: ""), finishReason: nil, to: &buffer)
            var events = firstEvents
            var streamed = ""
            while true {
                for event in events {
                    switch event {
                    case .chunk(let chunk):
                        streamed += chunk.text
                        frames.append(ChunkFrames.Delta(role: nil, content: chunk.text), finishReason: nil, to: &buffer)
                    case .complete(let done):
                        // Chunks that never reached the stream (a restarted turn) come from the stored reply.
                        let text = (try? await follower.replyText(done, ownerID: ownerID, streamed: streamed)) ?? streamed
                        if text.hasPrefix(streamed), text.count > streamed.count {
                            frames.append(ChunkFrames.Delta(role: nil, content: String(text.dropFirst(streamed.count))), finishReason: nil, to: &buffer)
                        }
                        frames.append(ChunkFrames.Delta(role: nil, content: nil), finishReason: "stop", to: &buffer)
                        if includeUsage { frames.appendUsage(OpenAIUsage(done.usage), to: &buffer) }
                        buffer.writeString("data: [DONE]\n\n")
                        try await writer.write(buffer)
                        try await writer.finish(nil)
                        return
                    case .error(let failure):
                        let error = OpenAIError.turnFailed(failure)
                        buffer.writeString("data: ")
                        buffer.writeBytes((try? APIJSON.encoder.encode(error.body)) ?? Data())
                        buffer.writeString("\n\ndata: [DONE]\n\n")
                        try await writer.write(buffer)
                        try await writer.finish(nil)
                        logger.info("a streamed chat completion ended with an error", metadata: ["code": "\(failure.code)"])
                        return
                    default:
                        continue
                    }
                }
                // A comment line keeps proxies from closing an idle stream; OpenAI's clients skip it.
                if buffer.readableBytes == 0 { buffer.writeString(": keep-alive\n\n") }
                try await writer.write(buffer)
                buffer.clear()
                events = try await follower.next(block: heartbeat)
            }
        })
    }
}

// MARK: - OpenAI's JSON

struct OpenAIModelList: Encodable {
    struct Model: Encodable {
        var id: String
        var object: String
        var created: Int
        var ownedBy: String
        enum CodingKeys: String, CodingKey {
            case id, object, created
            case ownedBy = "owned_by"
        }
    }

    var object = "list"
    var data: [Model]
}

struct OpenAIUsage: Encodable {
    var promptTokens: Int
    var completionTokens: Int
    var totalTokens: Int

    init(_ usage: TurnUsage?) {
        promptTokens = usage?.promptTokens ?? 0
        completionTokens = usage?.completionTokens ?? 0
        totalTokens = promptTokens + completionTokens
    }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case totalTokens = "total_tokens"
    }
}

struct OpenAIChatCompletion: Encodable {
    struct Choice: Encodable {
        struct Message: Encodable {
            var role: String
            var content: String
        }

        var index: Int
        var message: Message
        var finishReason: String
        enum CodingKeys: String, CodingKey {
            case index, message
            case finishReason = "finish_reason"
        }
    }

    var id: String
    var object = "chat.completion"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: OpenAIUsage

    init(id: String, created: Int, model: String, choices: [Choice], usage: OpenAIUsage) {
        self.id = id
        self.created = created
        self.model = model
        self.choices = choices
        self.usage = usage
    }
}

/// `chat.completion.chunk` frames of one streamed answer.
struct ChunkFrames: Sendable {
    let id: String
    let created: Int
    let model: String

    struct Delta: Encodable {
        var role: String?
        var content: String?
    }

    private struct Chunk: Encodable {
        struct Choice: Encodable {
            var index: Int
            var delta: Delta
            var finishReason: String?
            enum CodingKeys: String, CodingKey {
                case index, delta
                case finishReason = "finish_reason"
            }

            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(index, forKey: .index)
                try container.encode(delta, forKey: .delta)
                try container.encode(finishReason, forKey: .finishReason)
            }
        }

        var id: String
        var object = "chat.completion.chunk"
        var created: Int
        var model: String
        var choices: [Choice]
        var usage: OpenAIUsage?
    }

    func append(_ delta: Delta, finishReason: String?, to buffer: inout ByteBuffer) {
        write(Chunk(id: id, created: created, model: model, choices: [.init(index: 0, delta: delta, finishReason: finishReason)]), to: &buffer)
    }

    /// The last chunk of a stream asked for with `stream_options.include_usage`: no choices, the usage.
    func appendUsage(_ usage: OpenAIUsage, to buffer: inout ByteBuffer) {
        write(Chunk(id: id, created: created, model: model, choices: [], usage: usage), to: &buffer)
    }

    private func write(_ chunk: Chunk, to buffer: inout ByteBuffer) {
        guard let data = try? APIJSON.encoder.encode(chunk) else { return }
        buffer.writeString("data: ")
        buffer.writeBytes(data)
        buffer.writeString("\n\n")
    }
}

extension OpenAICompatibleAPI {
    /// Registers `/v1` on `router`: OpenAI's error shape outermost, then the same per-IP limit,
    /// API-key authentication and per-user limit as `/api/v1`, then OpenAI's error shape again.
    static func register(on router: Router<APIRequestContext>, recorder: RouteRecorder, dependencies: APIDependencies, hub: TurnStreamHub, limiter: RateLimiter) {
        let v1 = router.group("/v1")
        v1.add(middleware: OpenAIErrorMiddleware())
        v1.addCallerChecks(dependencies: dependencies, limiter: limiter)
        // Innermost too: the rate limiters turn what is thrown inside them into Switchboard's
        // shape, so the handlers' errors become OpenAI answers before they reach them.
        v1.add(middleware: OpenAIErrorMiddleware())
        let api = OpenAICompatibleAPI(dependencies: dependencies, hub: hub)
        recorder.record(.get, "/v1/models")
        v1.get("/models", use: api.models)
        recorder.record(.post, "/v1/chat/completions")
        v1.post("/chat/completions", use: api.chatCompletions)
    }
}
