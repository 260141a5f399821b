/// WhatsApp's inbound adapter: checks `X-Hub-Signature-256` (HMAC-SHA256 of the exact body with
/// the app secret, constant time) before anything is parsed, then reads the messages (one chat
/// per contact and connection, deduplicated by `wamid`) and the delivery statuses of replies.
/// Text becomes a turn; image, document, audio and video are downloaded by a job
/// (`WhatsAppMediaJob`) before anything answers them; any other type is stored with a note and
/// answered with a polite "unsupported" reply (`WhatsAppReceived.handOff`).
import Crypto
import Foundation
import SwitchboardCore

/// A webhook request for one WhatsApp connection.
public struct WhatsAppDelivery: Sendable {
    public var request: InboundRequest
    public var connection: WhatsAppConnection

    public init(request: InboundRequest, connection: WhatsAppConnection) {
        self.request = request
        self.connection = connection
    }
}

/// A reply's delivery status as WhatsApp reports it.
public struct WhatsAppStatusUpdate: Sendable, Equatable {
    /// The wamid WhatsApp gave the reply when it was sent.
    public var messageID: String
    public var status: DeliveryStatus

    public init(messageID: String, status: DeliveryStatus) {
        self.messageID = messageID
        self.status = status
    }
}

/// A media attachment of a WhatsApp message, as the webhook names it (the bytes are fetched later).
public struct WhatsAppMedia: Codable, Sendable, Equatable {
    /// `image`, `document`, `audio` or `video`.
    public var kind: String
    /// The media id to fetch from the Graph API.
    public var id: String
    public var mimeType: String?
    public var filename: String?

    public init(kind: String, id: String, mimeType: String? = nil, filename: String? = nil) {
        self.kind = kind
        self.id = id
        self.mimeType = mimeType
        self.filename = filename
    }

    /// The message types whose media is fetched.
    public static let kinds: Set<String> = ["image", "document", "audio", "video"]

    /// What a person calls it in a reply.
    public var label: String { WhatsAppReceived.label(of: kind) }
}

/// A WhatsApp message as Switchboard takes it: the message to store, and what follows.
public struct WhatsAppReceived: Sendable {
    public enum Kind: Sendable, Equatable {
        /// A text: its turn is queued.
        case text
        /// A media message: its download is queued (`WhatsAppMediaJob`), which then queues the turn
        /// or answers that the file could not be read.
        case media(WhatsAppMedia)
        /// Any other type (location, sticker, contacts, reaction, interactive, unknown…): stored
        /// with a note and answered politely, without a turn.
        case unsupported(type: String)
    }

    public var message: InboundMessage
    public var kind: Kind

    /// What `ChannelIntake.accept` queues for a new message of this kind in place of its turn
    /// (nil: the turn).
    public func handOff(connectionID: Int64, intake: ChannelIntake) -> (@Sendable (Message) async throws -> Void)? {
        switch kind {
        case .text:
            return nil
        case .media(let media):
            let jobs = intake.jobs
            return { message in try await WhatsAppMediaJob.enqueue(messageID: message.id, connectionID: connectionID, media: media, on: jobs) }
        case .unsupported(let type):
            return { message in try await intake.answerWithoutTurn(message, text: Self.unsupportedReply(type: type)) }
        }
    }

    /// The polite answer to a message Switchboard cannot read.
    public static func unsupportedReply(type: String) -> String {
        "Sorry, I can only read text messages and documents (PDF, Word or text files), so I could not read your \(label(of: type)). "
            + "Please send your question as text."
    }

    /// The answer to a media message whose file could not be downloaded.
    public static func downloadFailedReply(type: String) -> String {
        "Sorry, I could not download the \(label(of: type)) you sent. Please send it again, or send your question as text."
    }

    static func label(of type: String) -> String {
        switch type {
        case "audio": return "voice message"
        case "contacts": return "contact card"
        case "interactive", "button": return "button reply"
        case "image", "document", "video", "sticker", "location", "reaction": return type
        default: return "message"
        }
    }
}

public struct WhatsAppInbound: InboundAdapter {
    public var channel: Channel { .whatsapp }

    public init() {}

    public static let signatureHeader = "X-Hub-Signature-256"

    public func verify(_ payload: WhatsAppDelivery) throws {
        guard Self.isSigned(payload.request.body, signature: payload.request.header(Self.signatureHeader), secret: payload.connection.appSecret)
        else { throw SwitchboardError(.unauthorized, status: 401, "missing or invalid \(Self.signatureHeader)") }
    }

    /// True when `signature` is `sha256=<hex HMAC-SHA256(secret, body)>`; compared in constant time.
    public static func isSigned(_ body: [UInt8], signature: String?, secret: String) -> Bool {
        guard !secret.isEmpty, let signature, signature.hasPrefix("sha256="),
              let mac = hexBytes(signature.dropFirst("sha256=".count)), mac.count == SHA256.byteCount
        else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: body, using: SymmetricKey(data: Data(secret.utf8)))
    }

    /// Meta's subscription check (`GET` with `hub.mode`, `hub.verify_token`, `hub.challenge`): the
    /// challenge to answer with, or nil (403) unless the mode is `subscribe` and the token is the
    /// connection's (compared in constant time).
    public static func challengeAnswer(query: [String: String], verifyToken: String) -> String? {
        let matches = ConstantTime.equals(query["hub.verify_token"] ?? "", verifyToken)
        guard query["hub.mode"] == "subscribe", matches, !verifyToken.isEmpty, let challenge = query["hub.challenge"] else { return nil }
        return challenge
    }

    /// The header value a peer sends for `body` (tests and tools).
    public static func signature(of body: [UInt8], secret: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Data(secret.utf8)))
        return "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    static func hexBytes(_ text: Substring) -> [UInt8]? {
        guard text.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.count / 2)
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            guard let byte = UInt8(text[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return bytes
    }

    public func messages(in payload: WhatsAppDelivery) throws -> [InboundMessage] {
        try received(in: payload).map(\.message)
    }

    /// The messages in `payload` with what each needs next (call after `verify`).
    public func received(in payload: WhatsAppDelivery) throws -> [WhatsAppReceived] {
        let webhook = try Self.decode(payload.request.body)
        var messages: [WhatsAppReceived] = []
        for value in Self.values(of: webhook) {
            var names: [String: String] = [:]
            for contact in value.contacts ?? [] {
                if let id = contact.wa_id, let name = contact.profile?.name { names[id] = name }
            }
            for message in value.messages ?? [] {
                guard let from = message.from, let wamid = message.id, !from.isEmpty, !wamid.isEmpty else { continue }
                let kind = Self.kind(of: message)
                messages.append(WhatsAppReceived(
                    message: InboundMessage(
                        ownerID: payload.connection.ownerID, channel: .whatsapp, content: Self.content(of: message, kind: kind),
                        chat: .thread(
                            key: WhatsAppConnection.threadKey(connectionID: payload.connection.id, waID: from), title: names[from] ?? "+\(from)"),
                        externalID: wamid),
                    kind: kind))
            }
        }
        return messages
    }

    /// The delivery statuses in `payload` (call after `verify`).
    public func statuses(in payload: WhatsAppDelivery) throws -> [WhatsAppStatusUpdate] {
        Self.values(of: try Self.decode(payload.request.body)).flatMap { $0.statuses ?? [] }.compactMap { status in
            guard let id = status.id, let name = status.status, let state = DeliveryStatus(name: name) else { return nil }
            return WhatsAppStatusUpdate(messageID: id, status: state)
        }
    }

    static func decode(_ body: [UInt8]) throws -> WhatsAppWebhook {
        do {
            return try JSONDecoder().decode(WhatsAppWebhook.self, from: Data(body))
        } catch {
            throw SwitchboardError.badRequest("the body is not a WhatsApp webhook payload")
        }
    }

    static func values(of webhook: WhatsAppWebhook) -> [WhatsAppWebhook.Value] {
        (webhook.entry ?? []).flatMap { $0.changes ?? [] }.filter { ($0.field ?? "messages") == "messages" }.compactMap(\.value)
    }

    /// What follows a message: a text's turn, a media download, or the unsupported answer (a
    /// media message without a usable media id is unsupported too).
    static func kind(of message: WhatsAppWebhook.Message) -> WhatsAppReceived.Kind {
        let type = message.type ?? "unknown"
        if type == "text", let body = message.text?.body, !body.isEmpty { return .text }
        if WhatsAppMedia.kinds.contains(type), let media = Self.media(of: message), let id = media.id, Self.isMediaID(id) {
            return .media(WhatsAppMedia(kind: type, id: id, mimeType: media.mime_type, filename: media.filename))
        }
        return .unsupported(type: String(type.prefix(40)))
    }

    static func media(of message: WhatsAppWebhook.Message) -> WhatsAppWebhook.Message.Media? {
        switch message.type {
        case "image": return message.image
        case "document": return message.document
        case "audio": return message.audio
        case "video": return message.video
        default: return nil
        }
    }

    /// Media ids are opaque tokens of Meta's (digits in practice); anything else is not put in a URL.
    static func isMediaID(_ id: String) -> Bool {
        (1...128).contains(id.utf8.count) && id.utf8.allSatisfy { byte in
            (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122) || byte == 45 || byte == 46 || byte == 95
        }
    }

    /// Text as written; a media message as its caption and a note naming the file; any other
    /// type as a note.
    static func content(of message: WhatsAppWebhook.Message, kind: WhatsAppReceived.Kind) -> String {
        switch kind {
        case .text:
            return message.text?.body ?? ""
        case .media(let media):
            let note = media.filename.map { "[\(media.kind): \($0)]" } ?? "[\(media.kind)]"
            if let caption = Self.media(of: message)?.caption, !caption.isEmpty { return "\(caption)\n\(note)" }
            return note
        case .unsupported(let type):
            return "[\(type) message: not supported]"
        }
    }
}
