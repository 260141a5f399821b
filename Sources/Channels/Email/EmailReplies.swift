/// Email's deliverer: sends a stored reply over the connection's SMTP server (libcurl) from the
/// channel's address, with `Reply-To: reply+{token}@…`, `Re:` once, a Message-ID of its own (the
/// same for every attempt at one reply, so a resend is recognisable), In-Reply-To and References
/// naming the mail answered, `Auto-Submitted: auto-replied`, and text plus minimal HTML with the
/// original quoted. The Message-ID is stored, so the customer's answer threads.
import Foundation
import Logging
import Mail
import Storage
import SwitchboardCore

public struct EmailReplies: ChannelDelivery {
    public var channels: Set<SwitchboardCore.Channel> { [.email] }

    let stores: Stores
    let secrets: SecretBox
    /// The domain of the Message-IDs Switchboard writes (default: the channel address's domain).
    let messageIDDomain: String?
    /// Extra CA certificates to trust for SMTP (a private relay's).
    let caFile: String?
    let logger: Logger

    public init(stores: Stores, secrets: SecretBox, messageIDDomain: String? = nil, caFile: String? = nil, logger: Logger = Logger(label: "switchboard.email")) {
        self.stores = stores
        self.secrets = secrets
        self.messageIDDomain = messageIDDomain
        self.caFile = caFile
        self.logger = logger
    }

    public func deliver(reply: Message, origin: Message) async throws {
        guard let original = try await stores.emails.email(messageID: origin.id), original.direction == .inbound else {
            throw DeliveryError(.notDeliverable, "message \(origin.id) did not come from an email channel")
        }
        if let reason = original.ignoredReason {
            throw DeliveryError(.notDeliverable, "message \(origin.id) was written by a machine (\(reason)) and is never answered")
        }
        guard let connectionID = original.connectionID, let stored = try await stores.connections.connection(id: connectionID),
              stored.ownerID == origin.ownerID
        else { throw DeliveryError(.connectionGone, "the email channel of message \(origin.id) was deleted") }
        let connection = try EmailConnection(stored, secrets: secrets)
        guard let smtpURL = connection.smtpURL, !smtpURL.isEmpty else {
            throw DeliveryError(.smtpNotConfigured, "the email channel \(connection.id) has no SMTP server; set smtpUrl to send replies")
        }
        guard let chat = try await stores.chats.chat(id: origin.chatID, ownerID: origin.ownerID), let key = chat.externalThreadKey,
              let thread = EmailConnection.parseThreadKey(key)
        else { throw DeliveryError(.notDeliverable, "message \(origin.id) is not in an email thread") }

        let mail = Self.compose(
            reply: reply, original: original, connection: connection, token: thread.token,
            domain: messageIDDomain ?? String(connection.address.split(separator: "@").last ?? "localhost"))
        let sender = SMTPSender(url: smtpURL, options: CurlOptions(
            username: connection.smtpUsername, password: connection.smtpPassword, requireTLS: connection.startTLS == .required, caFile: caFile))
        try await sender.send(from: connection.address, to: [original.fromAddress], message: mail.render())
        _ = try await stores.messages.recordSent(id: reply.id, externalID: mail.messageID)
        try await stores.emails.record(EmailRecord(
            messageID: reply.id, ownerID: reply.ownerID, chatID: reply.chatID, connectionID: connection.id, direction: .outbound,
            rfcMessageID: mail.messageID, fromAddress: connection.address, fromName: connection.fromName, toAddress: original.fromAddress,
            subject: mail.subject, references: mail.references, sentDate: nil, fullText: mail.text))
        logger.debug("email reply sent", metadata: ["reply_id": "\(reply.id)", "connection": "\(connection.id)"])
    }

    /// The reply as it is sent. Its Message-ID depends only on the reply, so a retried send
    /// after an unrecorded success carries the same id.
    public static func compose(reply: Message, original: EmailRecord, connection: EmailConnection, token: String, domain: String) -> OutgoingMail {
        let body = MailComposer.replyBody(
            answer: reply.content, original: original.fullText ?? "", originalFrom: MailAddress(name: original.fromName, address: original.fromAddress),
            originalDate: original.sentDate)
        let stamp = Int64(reply.createdAt.timeIntervalSince1970 * 1000)
        return OutgoingMail(
            from: MailAddress(name: connection.fromName, address: connection.address),
            to: [MailAddress(name: original.fromName, address: original.fromAddress)],
            replyTo: MailAddress(name: connection.fromName, address: connection.replyAddress(token: token)),
            subject: MailComposer.replySubject(original.subject),
            messageID: "sb.\(reply.id).\(stamp)@\(domain)",
            inReplyTo: original.rfcMessageID,
            references: MailComposer.references(parent: original.references, parentID: original.rfcMessageID),
            date: Date(), text: body.text, html: body.html, autoSubmitted: "auto-replied")
    }
}
