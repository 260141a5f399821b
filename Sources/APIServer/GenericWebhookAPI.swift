/// `POST /api/v1/webhooks/generic` (a message from another system, authenticated by API key,
/// answered within `wait` seconds or POSTed to its `callbackUrl`) and
/// `POST /api/v1/webhooks/generic/secret` (rotates the API key's callback signing secret and shows
/// it once). The message goes through the `webhook` channel's adapter into the intake; what the
/// request asked for (callback, metadata) is kept beside the message in `webhook_requests`.
import Channels
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Storage
import SwitchboardCore
import Turns

struct GenericWebhookAPI: Sendable {
    let dependencies: APIDependencies
    let hub: TurnStreamHub
    /// The longest `wait`, in seconds.
    static let maxWait: Double = 60

    /// A validated request body.
    struct Submission: Sendable {
        var message: String
        var metadata: JSONValue?
        var wait: Double?
        var callbackURL: String?
    }

    static let knownFields: Set<String> = ["message", "metadata", "wait", "callbackUrl"]

    /// Everything is checked before anything is stored; each failure names its field.
    static func parse(_ bytes: ByteBuffer, maxCharacters: Int) throws -> Submission {
        guard bytes.readableBytes > 0 else { throw SwitchboardError.invalidField("body", "a JSON object is required") }
        guard let parsed = try? JSONDecoder().decode(JSONValue.self, from: Data(bytes.readableBytesView)) else {
            throw SwitchboardError.invalidField("body", "is not valid JSON")
        }
        guard case .object(let object) = parsed else { throw SwitchboardError.invalidField("body", "must be a JSON object") }
        if let unknown = object.keys.sorted().first(where: { !knownFields.contains($0) }) {
            throw SwitchboardError.invalidField(unknown, "is not a field of this request (message, metadata, wait, callbackUrl)")
        }
        guard case .string(let message)? = object["message"] else { throw SwitchboardError.invalidField("message", "is required and must be a string") }
        if message.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw SwitchboardError.invalidField("message", "must not be empty") }
        if message.count > maxCharacters { throw SwitchboardError.invalidField("message", "is longer than \(maxCharacters) characters") }
        var submission = Submission(message: message)
        switch object["metadata"] {
        case nil, .null?: break
        case .object?: submission.metadata = object["metadata"]
        default: throw SwitchboardError.invalidField("metadata", "must be a JSON object")
        }
        switch object["wait"] {
        case nil, .null?: break
        case let wait? where wait.doubleValue.map({ $0 >= 0 && $0 <= maxWait }) == true: submission.wait = wait.doubleValue
        default: throw SwitchboardError.invalidField("wait", "must be a number of seconds from 0 to \(Int(maxWait))")
        }
        switch object["callbackUrl"] {
        case nil, .null?: break
        case .string(let url)?:
            do {
                _ = try CallbackAddress.parse(url)
            } catch {
                throw SwitchboardError.invalidField("callbackUrl", error.reason)
            }
            submission.callbackURL = url
        default: throw SwitchboardError.invalidField("callbackUrl", "must be a string")
        }
        return submission
    }

    /// POST /webhooks/generic
    func receive(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        _ = try context.requireAPIKeyID()
        var request = request
        if let contentType = request.headers[.contentType], !contentType.lowercased().contains("json") {
            throw SwitchboardError(.unsupportedMediaType, status: 415, "Content-Type must be application/json")
        }
        let bytes = try await APIJSON.collect(&request, maxBytes: dependencies.settings.maxBodyBytes)
        let submission = try Self.parse(bytes, maxCharacters: dependencies.settings.maxMessageCharacters)
        if let callback = submission.callbackURL {
            do {
                try await CallbackAddress.check(callback, allowPrivate: dependencies.settings.allowPrivateCallbacks)
            } catch {
                throw SwitchboardError.invalidField("callbackUrl", error.reason)
            }
            guard try await dependencies.stores.webhooks.signingSecret(apiKeyID: caller.keyID) != nil else {
                throw SwitchboardError.invalidField(
                    "callbackUrl", "needs a signing secret for this API key first: POST /api/v1/webhooks/generic/secret")
            }
        }
        let metadataText = try submission.metadata.map { String(decoding: try APIJSON.encoder.encode($0), as: UTF8.self) }

        // What the request asked for is kept beside its message before the turn can start, so
        // the delivery always finds its callback.
        let webhooks = dependencies.stores.webhooks
        let keyID = caller.keyID
        let callbackURL = submission.callbackURL
        let record: @Sendable (Message) async throws -> Void = { message in
            try await webhooks.recordRequest(WebhookRequest(messageID: message.id, apiKeyID: keyID, callbackURL: callbackURL, metadata: metadataText))
        }
        var accepted: ChannelIntake.Accepted?
        for inbound in try GenericWebhookInbound().accept(GenericWebhookSubmission(userID: caller.user.id, message: submission.message)) {
            accepted = try await dependencies.intake.accept(inbound, logger: context.logger, beforeQueuing: record)
        }
        guard let message = accepted?.message else { throw SwitchboardError.badRequest("the request carried no message") }

        let pending = WebhookAcceptedJSON(
            messageId: message.id, chatId: message.chatID, status: "queued", events: Links.events(message.id),
            callback: submission.callbackURL == nil ? nil : "pending")
        guard let wait = submission.wait, wait > 0 else {
            return try APIJSON.response(pending, status: .accepted, headers: [.location: pending.events])
        }

        var follower = TurnFollower(hub: hub, messages: dependencies.stores.messages, messageID: message.id)
        defer { follower.cancel() }
        let deadline = ContinuousClock.now + .milliseconds(Int64(wait * 1000))
        var streamed = ""
        var status = "queued"
        while ContinuousClock.now < deadline {
            let block = min(deadline - ContinuousClock.now, dependencies.settings.heartbeatInterval)
            guard block > .milliseconds(1) else { break }
            for event in try await follower.next(block: block) {
                switch event {
                case .status: status = "running"
                case .chunk(let chunk): streamed += chunk.text
                case .complete(let done):
                    let text = try await follower.replyText(done, ownerID: caller.user.id, streamed: streamed)
                    let answer = WebhookAnswerJSON(
                        messageId: message.id, chatId: message.chatID, replyId: done.replyId,
                        response: .init(text: text, metadata: .init(topic: done.topic, language: done.language, model: done.model, usage: done.usage)),
                        metadata: submission.metadata)
                    return try APIJSON.response(answer)
                case .error(let failure):
                    throw Self.turnError(failure)
                default:
                    continue
                }
            }
        }
        var late = pending
        late.status = status
        return try APIJSON.response(late, status: .accepted, headers: [.location: late.events])
    }

    /// The error answer of a turn that ended without a reply within `wait`.
    static func turnError(_ failure: TurnErrorEvent) -> SwitchboardError {
        switch failure.code {
        case "queue_unavailable": return .unavailable(failure.message)
        case "cancelled", "message_deleted": return SwitchboardError(.init(rawValue: failure.code), status: 409, failure.message)
        default: return SwitchboardError(.init(rawValue: failure.code), status: 502, "the turn failed: \(failure.message)")
        }
    }

    /// POST /webhooks/generic/secret: a new signing secret for the caller's API key, shown once.
    func rotateSecret(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        _ = try context.requireAPIKeyID()
        let secret = WebhookSignature.newSecret()
        try await dependencies.stores.webhooks.setSigningSecret(apiKeyID: caller.keyID, sealed: try dependencies.secrets.seal(["secret": secret]))
        return try APIJSON.response(
            SigningSecretJSON(apiKeyId: caller.keyID, secret: secret, header: WebhookSignature.header), status: .created,
            headers: [.cacheControl: "no-store"])
    }
}

struct WebhookAcceptedJSON: Encodable {
    var messageId: Int64
    var chatId: Int64
    /// `queued` or `running`: the reply is not there yet.
    var status: String
    var events: String
    /// `pending` when the reply will be POSTed to the callback.
    var callback: String?
}

struct WebhookAnswerJSON: Encodable {
    struct Reply: Encodable {
        struct Metadata: Encodable {
            var topic: String?
            var language: String?
            var model: String?
            var usage: TurnUsage?
        }

        var text: String
        var metadata: Metadata
    }

    var messageId: Int64
    var chatId: Int64
    var replyId: Int64?
    var response: Reply
    /// The request's own `metadata`, echoed.
    var metadata: JSONValue?
}

struct SigningSecretJSON: Encodable {
    var apiKeyId: Int64
    var secret: String
    var header: String
}
