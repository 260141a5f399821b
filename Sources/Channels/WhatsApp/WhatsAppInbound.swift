/// WhatsApp's inbound adapter: checks `X-Hub-Signature-256` (HMAC-SHA256 of the exact body with
/// the app secret, constant time) before anything is parsed, then reads the messages (one chat
/// per contact and connection, deduplicated by `wamid`) and the delivery statuses of replies.
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
        let webhook = try Self.decode(payload.request.body)
        var messages: [InboundMessage] = []
        for value in Self.values(of: webhook) {
            var names: [String: String] = [:]
            for contact in value.contacts ?? [] {
                if let id = contact.wa_id, let name = contact.profile?.name { names[id] = name }
            }
            for message in value.messages ?? [] {
                guard let from = message.from, let wamid = message.id, !from.isEmpty, !wamid.isEmpty else { continue }
                messages.append(InboundMessage(
                    ownerID: payload.connection.ownerID, channel: .whatsapp, content: Self.content(of: message),
                    chat: .thread(key: WhatsAppConnection.threadKey(connectionID: payload.connection.id, waID: from), title: names[from] ?? "+\(from)"),
                    externalID: wamid))
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

    /// Text as written. Other types are kept as a note (with the caption when there is one): the
    /// media itself is not downloaded yet.
    static func content(of message: WhatsAppWebhook.Message) -> String {
        let type = message.type ?? "unknown"
        if type == "text", let body = message.text?.body, !body.isEmpty { return body }
        let media = message.image ?? message.document ?? message.video ?? message.audio
        let note = "[\(type) message: not supported yet]"
        if let caption = media?.caption, !caption.isEmpty { return "\(caption)\n\(note)" }
        return note
    }
}
