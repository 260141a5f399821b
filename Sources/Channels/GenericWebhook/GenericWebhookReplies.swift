/// The generic webhook as a channel, outbound: a reply to a request that named a `callbackUrl` is
/// POSTed there by the `deliver_reply` job (retried with backoff on timeouts, 408, 429 and 5xx),
/// signed with the signing secret of the API key that sent the request. A request without a
/// callback was answered through the API (`wait`, or the events URL): delivering it sends nothing.
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Storage
import SwitchboardCore

public struct GenericWebhookReplies: ChannelDelivery {
    public var channels: Set<SwitchboardCore.Channel> { [.webhook] }

    let stores: Stores
    let secrets: SecretBox
    let allowPrivateCallbacks: Bool
    let http: HTTPClient
    let timeout: TimeAmount

    /// Follows no redirect: a redirect could lead a checked URL to an address callbacks may not reach.
    public static let sharedClient: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    public init(
        stores: Stores, secrets: SecretBox, allowPrivateCallbacks: Bool = false, http: HTTPClient = GenericWebhookReplies.sharedClient,
        timeout: TimeAmount = .seconds(15)
    ) {
        self.stores = stores
        self.secrets = secrets
        self.allowPrivateCallbacks = allowPrivateCallbacks
        self.http = http
        self.timeout = timeout
    }

    public func deliver(reply: Message, origin: Message) async throws {
        guard reply.status == .completed else {
            throw DeliveryError(.notDeliverable, "reply \(reply.id) is \(reply.status.rawValue), not completed")
        }
        // The request is recorded before its turn is queued (`ChannelIntake.accept`'s
        // `beforeQueuing`): without one, or without a callback, there is nothing to send.
        guard let request = try await stores.webhooks.request(messageID: origin.id), let callback = request.callbackURL else { return }
        guard let keyID = request.apiKeyID, let sealed = try await stores.webhooks.signingSecret(apiKeyID: keyID),
              let secret = try secrets.open(sealed)["secret"]
        else { throw DeliveryError(.callbackUnsigned, "the API key that sent message \(origin.id) has no signing secret any more") }
        do {
            try await CallbackAddress.check(callback, allowPrivate: allowPrivateCallbacks)
        } catch {
            throw DeliveryError(.callbackRefused, "callbackUrl \(error.reason)")
        }
        let body = try Self.body(reply: reply, origin: origin, metadata: request.metadata)
        let timestamp = Int(Date().timeIntervalSince1970)
        var post = HTTPClientRequest(url: callback)
        post.method = .POST
        post.headers.add(name: "Content-Type", value: "application/json")
        post.headers.add(name: "User-Agent", value: "Switchboard/\(SwitchboardVersion.current)")
        post.headers.add(name: WebhookSignature.header, value: WebhookSignature.value(secret: secret, timestamp: timestamp, body: body))
        // The same id on every attempt: a receiver can drop a delivery it already took.
        post.headers.add(name: "X-Switchboard-Delivery", value: "reply-\(reply.id)")
        post.body = .bytes(ByteBuffer(bytes: body))
        let status: Int
        do {
            let response = try await http.execute(post, timeout: timeout)
            _ = try? await response.body.collect(upTo: 64 * 1024)
            status = Int(response.status.code)
        } catch {
            throw CallbackRetryableError(message: "the callback could not be reached: \(error)")
        }
        if (200..<300).contains(status) { return }
        if status == 408 || status == 429 || status >= 500 {
            throw CallbackRetryableError(message: "the callback answered HTTP \(status)")
        }
        throw DeliveryError(.callbackRejected, "the callback answered HTTP \(status)")
    }

    /// The JSON posted to the callback.
    static func body(reply: Message, origin: Message, metadata: String?) throws -> [UInt8] {
        var object: [String: Any] = [
            "event": "reply",
            "messageId": origin.id,
            "chatId": origin.chatID,
            "replyId": reply.id,
            "response": [
                "text": reply.content,
                "metadata": [
                    "topic": (reply.topic ?? origin.topic).map { $0 as Any } ?? NSNull(),
                    "language": (reply.language ?? origin.language).map { $0 as Any } ?? NSNull(),
                ] as [String: Any],
            ] as [String: Any],
        ]
        if let metadata, let parsed = try? JSONSerialization.jsonObject(with: Data(metadata.utf8)) {
            object["metadata"] = parsed
        }
        return Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
    }
}

/// A callback that may succeed later (unreachable, 408, 429, 5xx): the job retries it with backoff.
public struct CallbackRetryableError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { "\(message); will retry" }
}

extension ErrorCode where Kind == DeliveryFailure {
    /// The callback answered a client error other than 408 or 429.
    public static var callbackRejected: Self { "callback_rejected" }
    /// The callback URL now resolves to an address callbacks may not reach.
    public static var callbackRefused: Self { "callback_refused" }
    /// The request's API key (or its signing secret) is gone: the callback cannot be signed.
    public static var callbackUnsigned: Self { "callback_unsigned" }
}
