/// Where a received mail joins the turn path: threaded (a `reply+{token}` recipient, else an
/// In-Reply-To or References naming a mail Switchboard stored or sent to or from this sender,
/// else a new chat), deduplicated by Message-ID, stored with its attachments and its email
/// record, and its turn queued — unless a machine wrote it (auto-reply, bounce): then it is
/// stored as ignored and never answered. Mailgun tokens are remembered in Redis so a captured
/// post cannot be replayed.
import Foundation
import Logging
import Mail
import RedisClient
import Storage
import SwitchboardCore

public struct EmailReceiver: Sendable {
    public var stores: Stores
    public var intake: ChannelIntake
    public var redis: RedisClient
    public var attachments: EmailAttachmentStore

    public init(stores: Stores, intake: ChannelIntake, redis: RedisClient, attachments: EmailAttachmentStore) {
        self.stores = stores
        self.intake = intake
        self.redis = redis
        self.attachments = attachments
    }

    /// How long an accepted Mailgun token is remembered: longer than a signature stays valid
    /// (5 minutes either way).
    public static let tokenMemory = 900

    /// False when `token` was accepted before (a replay).
    public func claimMailgunToken(_ token: String, connectionID: Int64) async throws -> Bool {
        try await redis.set(Self.tokenKey(token, connectionID: connectionID), "1", condition: .nx, expiration: .seconds(Self.tokenMemory))
    }

    /// Forgets a token whose post could not be stored, so the peer's retry is accepted.
    public func releaseMailgunToken(_ token: String, connectionID: Int64) async {
        _ = try? await redis.del(Self.tokenKey(token, connectionID: connectionID))
    }

    static func tokenKey(_ token: String, connectionID: Int64) -> String { "email:mailgun-token:\(connectionID):\(token.prefix(200))" }

    /// Threads and stores one mail (and queues its turn unless it is ignored).
    public func receive(_ received: ReceivedMail, connection: EmailConnection, logger: Logger) async throws -> ChannelIntake.Accepted {
        let mail = received.mail
        try attachments.checkSizes(mail.attachments)
        let key = try await threadKey(for: received, connection: connection)
        let ignored = mail.automatic?.rawValue
        let inbound = InboundMessage(
            ownerID: connection.ownerID, channel: .email, content: Self.content(of: mail),
            chat: .thread(key: key, title: mail.subject.isEmpty ? nil : String(mail.subject.prefix(200))),
            externalID: received.externalID, ignoredReason: ignored)
        if !mail.warnings.isEmpty {
            logger.warning("inbound mail was malformed; stored as far as it could be read", metadata: [
                "connection": "\(connection.id)", "warnings": "\(mail.warnings.joined(separator: "; "))",
            ])
        }
        let stores = self.stores
        let attachments = self.attachments
        return try await intake.accept(inbound, logger: logger) { message in
            try await stores.emails.record(EmailRecord(
                messageID: message.id, ownerID: message.ownerID, chatID: message.chatID, connectionID: connection.id, direction: .inbound,
                rfcMessageID: mail.messageID ?? received.externalID, fromAddress: mail.from?.address ?? "", fromName: mail.from?.name,
                toAddress: connection.address, subject: mail.subject, references: mail.references, sentDate: mail.headers["Date"],
                fullText: mail.text, ignoredReason: ignored, warnings: mail.warnings))
            if !mail.attachments.isEmpty { _ = try await attachments.store(mail.attachments, message: message) }
        }
    }

    /// The thread a mail belongs to: the chat of a `reply+{token}` recipient; else of the nearest
    /// In-Reply-To / References id that Switchboard stored or sent in a conversation with the same
    /// sender (a reply to someone else's thread starts its own); else a new one.
    public func threadKey(for received: ReceivedMail, connection: EmailConnection) async throws -> String {
        for address in received.recipients {
            if let token = connection.replyToken(in: address) {
                let key = EmailConnection.threadKey(connectionID: connection.id, token: token)
                if try await stores.chats.chat(ownerID: connection.ownerID, channel: .email, externalThreadKey: key) != nil { return key }
            }
        }
        let candidates = received.mail.threadCandidates
        if !candidates.isEmpty, let sender = received.mail.from?.normalized {
            let records = try await stores.emails.emails(ownerID: connection.ownerID, rfcMessageIDs: candidates)
            for id in candidates {
                for record in records where record.rfcMessageID == id && record.contact.lowercased() == sender {
                    if let chat = try await stores.chats.chat(id: record.chatID, ownerID: connection.ownerID), let key = chat.externalThreadKey,
                       EmailConnection.parseThreadKey(key) != nil {
                        return key
                    }
                }
            }
        }
        return EmailConnection.threadKey(connectionID: connection.id, token: EmailConnection.newReplyToken())
    }

    /// The message text: what is new in the mail (the quoted conversation stripped), else a note.
    public static func content(of mail: ParsedMail) -> String {
        let text = mail.newText
        if !text.isEmpty { return text }
        if !mail.attachments.isEmpty { return "(no text; attached: \(mail.attachments.map(\.filename).joined(separator: ", ")))" }
        return mail.subject.isEmpty ? "(empty message)" : mail.subject
    }
}
