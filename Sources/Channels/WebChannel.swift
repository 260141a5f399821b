/// The web chat and the REST API as channels: their inbound adapter (a request the api already
/// authenticated with an API key becomes an `InboundMessage`) and their deliverer (the turn
/// stream and the stored reply are the delivery; nothing leaves the server).
import Foundation
import Storage
import SwitchboardCore

/// A message submitted through `POST /api/v1/messages` or `POST /api/v1/chats/{id}/messages`.
public struct WebSubmission: Sendable, Equatable {
    /// The API key's user (authenticated by the api before the adapter sees the submission).
    public var userID: Int64
    public var content: String
    /// An existing chat, or nil for a new one titled `title`.
    public var chatID: Int64?
    public var title: String?
    /// The request's `Idempotency-Key`, if it had one. It becomes the message's `externalID`, so
    /// a retry whose first attempt was stored (its answer lost: a dropped connection, an api node
    /// killed before it recorded the key in Redis) finds that message instead of storing another.
    public var idempotencyKey: String?

    public init(userID: Int64, content: String, chatID: Int64?, title: String?, idempotencyKey: String? = nil) {
        self.userID = userID
        self.content = content
        self.chatID = chatID
        self.title = title
        self.idempotencyKey = idempotencyKey
    }

    /// The `externalID` a web message submitted with `idempotencyKey` is stored under.
    public static func externalID(userID: Int64, idempotencyKey: String) -> String {
        InboundMessage.externalID(scope: "user:\(userID)", idempotencyKey: idempotencyKey)
    }
}

/// The web chat's inbound adapter.
public struct WebChatInbound: InboundAdapter {
    public var channel: Channel { .web }

    public init() {}

    /// The api's key check at the edge is this channel's authentication.
    public func verify(_ payload: WebSubmission) throws {}

    public func messages(in payload: WebSubmission) throws -> [InboundMessage] {
        [InboundMessage(
            ownerID: payload.userID, channel: channel, content: payload.content,
            chat: payload.chatID.map { .existing($0) } ?? .new(title: payload.title),
            externalID: payload.idempotencyKey.map { WebSubmission.externalID(userID: payload.userID, idempotencyKey: $0) })]
    }
}

/// Web chat, the API and the widget: their clients already have the answer from the turn stream
/// (`chunk` … `complete`) and read it back from the stored reply (GET /api/v1/messages/{id}), so
/// nothing leaves the server; delivering is recording that the reply is there to read.
public struct StoredReplyDelivery: ChannelDelivery {
    public var channels: Set<Channel> { [.web, .api, .widget] }
    public var isTurnStream: Bool { true }

    public init() {}

    public func deliver(reply: Message, origin: Message) async throws {
        guard reply.status == .completed else {
            throw DeliveryError(.notDeliverable, "reply \(reply.id) is \(reply.status.rawValue), not completed")
        }
    }
}
