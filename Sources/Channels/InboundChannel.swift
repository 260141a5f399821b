/// The inbound half of the channel seam: what every channel turns its traffic into
/// (`InboundMessage`), and the adapter protocol that does it (`InboundAdapter`: check that a
/// payload is authentic, then parse it). What happens to an `InboundMessage` next is the same for
/// every channel (`ChannelIntake`).
import Crypto
import Foundation
import SwitchboardCore

/// A message as it arrived on a channel, verified and parsed, before it is stored.
public struct InboundMessage: Sendable, Equatable {
    /// Which chat the message goes to.
    public enum Chat: Sendable, Equatable {
        /// A chat of the owner's, by id (a chat of someone else's is answered as not found).
        case existing(Int64)
        /// A new chat, titled `title` (or after the message's first line).
        case new(title: String?)
        /// The chat of an external conversation (a WhatsApp contact, an email thread), found by
        /// its key on this channel, or started with `title` on its first message.
        case thread(key: String, title: String?)
        /// A new chat that arrives with its conversation so far (the OpenAI-compatible endpoint's
        /// earlier messages): they are stored before the message as already answered history.
        case newWithHistory(title: String?, history: [Earlier])
    }

    /// A message that came before this one in a conversation the channel hands over whole.
    public struct Earlier: Sendable, Equatable {
        public var role: MessageRole
        public var content: String
        public init(role: MessageRole, content: String) {
            self.role = role
            self.content = content
        }
    }

    /// The user the message belongs to (the API key's user, or the channel's owner).
    public var ownerID: Int64
    public var channel: Channel
    public var content: String
    public var chat: Chat
    /// The channel's own id of the message (a WhatsApp `wamid`, an email `Message-ID`): a
    /// delivery retried by the channel is recognised by it and stored once.
    public var externalID: String?
    /// Why the message is stored but never answered (an email auto-reply or bounce): no turn is
    /// queued, and the message is stored `cancelled` with this reason as its error.
    public var ignoredReason: String?

    /// The `externalID` of a message a client submitted with an `Idempotency-Key`: scoped (to a
    /// user, a widget session) because the column is unique per channel, and hashed to fit it.
    /// A retry whose first attempt was stored, its answer lost, finds that message by it.
    public static func externalID(scope: String, idempotencyKey: String) -> String {
        let digest = SHA256.hash(data: Data(idempotencyKey.utf8)).map { String(format: "%02x", $0) }.joined()
        return "idempotency:\(scope):\(digest)"
    }

    public init(ownerID: Int64, channel: Channel, content: String, chat: Chat, externalID: String? = nil, ignoredReason: String? = nil) {
        self.ownerID = ownerID
        self.channel = channel
        self.content = content
        self.chat = chat
        self.externalID = externalID
        self.ignoredReason = ignoredReason
    }
}

/// Turns one channel's payloads into `InboundMessage`s. A webhook's payload is its raw request
/// (`InboundRequest`: signatures are checked on the exact bytes, before anything is parsed); the
/// web chat's is a request the api already authenticated.
public protocol InboundAdapter: Sendable {
    associatedtype Payload: Sendable
    /// The channel its messages arrive on.
    var channel: Channel { get }
    /// Throws `SwitchboardError` (401) unless `payload` comes from the channel's peer.
    func verify(_ payload: Payload) throws
    /// The messages `payload` carries: none for a payload that is only a receipt or a status.
    func messages(in payload: Payload) throws -> [InboundMessage]
}

extension InboundAdapter {
    /// `verify`, then `messages(in:)`: nothing is parsed from a payload that failed verification.
    public func accept(_ payload: Payload) throws -> [InboundMessage] {
        try verify(payload)
        return try messages(in: payload)
    }
}

/// A webhook request as received: method, path, query, headers (names lowercased) and the body's
/// exact bytes.
public struct InboundRequest: Sendable, Equatable {
    public var method: String
    public var path: String
    public var query: [String: String]
    public var headers: [String: String]
    public var body: [UInt8]

    public init(method: String, path: String, query: [String: String] = [:], headers: [String: String] = [:], body: [UInt8]) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { first, _ in first })
        self.body = body
    }

    public func header(_ name: String) -> String? { headers[name.lowercased()] }
}
