/// The email channel's rows (`email_messages`): for each mail received or sent, its RFC
/// Message-ID (threading looks replies up by it), its sender and recipient, subject, References,
/// the full body, why it was ignored (auto-replies, bounces) and what the parser warned about.
import Foundation
import SwitchboardCore

/// One mail beside its message.
public struct EmailRecord: Sendable, Equatable {
    public enum Direction: String, Sendable { case inbound = "in", outbound = "out" }

    public var messageID: Int64
    public var ownerID: Int64
    public var chatID: Int64
    public var connectionID: Int64?
    public var direction: Direction
    /// Without angle brackets.
    public var rfcMessageID: String
    public var fromAddress: String
    public var fromName: String?
    public var toAddress: String
    public var subject: String
    public var references: [String]
    /// The mail's Date header as written.
    public var sentDate: String?
    /// The whole body, the quoted earlier conversation included (the message holds the new text).
    public var fullText: String?
    /// Why the mail is stored but never answered (`auto_submitted`, `auto_reply`, `bounce`).
    public var ignoredReason: String?
    public var warnings: [String]

    public init(
        messageID: Int64, ownerID: Int64, chatID: Int64, connectionID: Int64?, direction: Direction, rfcMessageID: String,
        fromAddress: String, fromName: String? = nil, toAddress: String, subject: String, references: [String] = [],
        sentDate: String? = nil, fullText: String? = nil, ignoredReason: String? = nil, warnings: [String] = []
    ) {
        self.messageID = messageID
        self.ownerID = ownerID
        self.chatID = chatID
        self.connectionID = connectionID
        self.direction = direction
        self.rfcMessageID = rfcMessageID
        self.fromAddress = fromAddress
        self.fromName = fromName
        self.toAddress = toAddress
        self.subject = subject
        self.references = references
        self.sentDate = sentDate
        self.fullText = fullText
        self.ignoredReason = ignoredReason
        self.warnings = warnings
    }

    /// The other side of the conversation: the sender of a mail in, the recipient of a mail out.
    public var contact: String { direction == .inbound ? fromAddress : toAddress }
}

public protocol EmailStore: Sendable {
    /// Records a mail; a second record for the same message changes nothing.
    func record(_ email: EmailRecord) async throws
    func email(messageID: Int64) async throws -> EmailRecord?
    /// The owner's mails known by any of `rfcMessageIDs` (threading).
    func emails(ownerID: Int64, rfcMessageIDs: [String]) async throws -> [EmailRecord]
}

public struct MariaDBEmailStore: EmailStore {
    let database: Database

    public init(database: Database) { self.database = database }

    static let columns = """
        message_id, user_id, chat_id, connection_id, direction, rfc_message_id, from_address, from_name, to_address, subject, \
        references_header, sent_date, full_text, ignored_reason, warnings
        """

    public func record(_ email: EmailRecord) async throws {
        _ = try await database.execute(
            """
            INSERT IGNORE INTO email_messages (\(Self.columns), created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [.int(email.messageID), .int(email.ownerID), .int(email.chatID), .optional(email.connectionID), .string(email.direction.rawValue),
             .string(String(email.rfcMessageID.prefix(255))), .string(String(email.fromAddress.prefix(320))),
             .optional(email.fromName.map { String($0.prefix(200)) }), .string(String(email.toAddress.prefix(320))),
             .string(String(email.subject.prefix(1000))),
             email.references.isEmpty ? .null : .string(email.references.joined(separator: " ")), .optional(email.sentDate.map { String($0.prefix(100)) }),
             .optional(email.fullText), .optional(email.ignoredReason),
             email.warnings.isEmpty ? .null : .string(email.warnings.joined(separator: "\n")), .date(.databaseNow())])
    }

    public func email(messageID: Int64) async throws -> EmailRecord? {
        try await database.queryFirst("SELECT \(Self.columns) FROM email_messages WHERE message_id = ?", [.int(messageID)]).map(Self.decode)
    }

    public func emails(ownerID: Int64, rfcMessageIDs: [String]) async throws -> [EmailRecord] {
        let ids = Array(rfcMessageIDs.prefix(50)).map { String($0.prefix(255)) }
        guard !ids.isEmpty else { return [] }
        let placeholders = Array(repeating: "?", count: ids.count).joined(separator: ", ")
        return try await database.query(
            "SELECT \(Self.columns) FROM email_messages WHERE user_id = ? AND rfc_message_id IN (\(placeholders)) ORDER BY message_id DESC",
            [.int(ownerID)] + ids.map { .string($0) }
        ).map(Self.decode)
    }

    static func decode(_ row: Row) throws -> EmailRecord {
        EmailRecord(
            messageID: try row.int("message_id"), ownerID: try row.int("user_id"), chatID: try row.int("chat_id"),
            connectionID: try row.optionalInt("connection_id"),
            direction: EmailRecord.Direction(rawValue: try row.string("direction")) ?? .inbound,
            rfcMessageID: try row.string("rfc_message_id"), fromAddress: try row.string("from_address"),
            fromName: try row.optionalString("from_name"), toAddress: try row.string("to_address"), subject: try row.string("subject"),
            references: (try row.optionalString("references_header")).map { $0.split(separator: " ").map(String.init) } ?? [],
            sentDate: try row.optionalString("sent_date"), fullText: try row.optionalString("full_text"),
            ignoredReason: try row.optionalString("ignored_reason"),
            warnings: (try row.optionalString("warnings")).map { $0.split(separator: "\n").map(String.init) } ?? [])
    }
}
