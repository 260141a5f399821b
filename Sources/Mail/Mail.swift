/// Mail owns email as bytes: parsing a raw message (RFC 5322 headers, RFC 2045–2049 MIME bodies,
/// RFC 2047 encoded words, RFC 2231 parameters) into a `ParsedMail`, and composing the replies
/// Switchboard sends. It has no server dependencies; the email channel (`Channels/Email`) uses it.
import Foundation

/// A mail address with its display name, as written in From, To, Cc or Reply-To.
public struct MailAddress: Sendable, Hashable, CustomStringConvertible {
    public var name: String?
    /// `local@domain`, as written (domains compare case-insensitively: see `normalized`).
    public var address: String

    public init(name: String? = nil, address: String) {
        self.name = name?.isEmpty == true ? nil : name
        self.address = address
    }

    /// The address lowercased, for comparisons.
    public var normalized: String { address.lowercased() }
    public var localPart: String { String(address.split(separator: "@", maxSplits: 1).first ?? "") }
    public var domain: String { address.split(separator: "@", maxSplits: 1).dropFirst().first.map(String.init) ?? "" }
    public var description: String { name.map { "\($0) <\(address)>" } ?? address }
}

/// A file carried by a mail.
public struct MailAttachment: Sendable, Hashable {
    public var filename: String
    public var contentType: String
    public var contentID: String?
    public var data: [UInt8]

    public init(filename: String, contentType: String, contentID: String? = nil, data: [UInt8]) {
        self.filename = filename
        self.contentType = contentType
        self.contentID = contentID
        self.data = data
    }
}

/// Why a mail was written by a machine rather than a person (and must never be answered).
public enum AutomaticMail: String, Sendable, Hashable {
    /// `Auto-Submitted` other than `no` (RFC 3834).
    case autoSubmitted = "auto_submitted"
    /// `X-Autoreply`, `X-Autorespond` or `Precedence: auto_reply`.
    case autoReply = "auto_reply"
    /// A delivery status notification: from MAILER-DAEMON or postmaster, or `multipart/report`.
    case bounce
}

/// A mail as Switchboard reads it: the headers that matter decoded, one text body, the files.
/// Parsing never fails: what could not be read is named in `warnings`.
public struct ParsedMail: Sendable, Hashable {
    public var headers: MailHeaders
    public var subject: String
    public var from: MailAddress?
    public var to: [MailAddress]
    public var cc: [MailAddress]
    public var replyTo: [MailAddress]
    /// Without angle brackets.
    public var messageID: String?
    public var inReplyTo: [String]
    public var references: [String]
    /// The text: the plain part, or the text of the HTML part when there is no plain one.
    public var text: String
    public var html: String?
    public var attachments: [MailAttachment]
    /// What was wrong with the message (a missing boundary, an unknown charset, ...).
    public var warnings: [String]

    public init(
        headers: MailHeaders = MailHeaders(), subject: String = "", from: MailAddress? = nil, to: [MailAddress] = [],
        cc: [MailAddress] = [], replyTo: [MailAddress] = [], messageID: String? = nil, inReplyTo: [String] = [],
        references: [String] = [], text: String = "", html: String? = nil, attachments: [MailAttachment] = [],
        warnings: [String] = []
    ) {
        self.headers = headers
        self.subject = subject
        self.from = from
        self.to = to
        self.cc = cc
        self.replyTo = replyTo
        self.messageID = messageID
        self.inReplyTo = inReplyTo
        self.references = references
        self.text = text
        self.html = html
        self.attachments = attachments
        self.warnings = warnings
    }

    /// Why the mail is automatic, or nil for a mail a person wrote.
    public var automatic: AutomaticMail? { AutomaticMailDetector.reason(headers: headers, from: from) }

    /// The text without the quoted earlier conversation (`QuotedReply.strip`).
    public var newText: String { QuotedReply.strip(text) }

    /// The Message-IDs this mail answers, nearest first: In-Reply-To, then References from the last.
    public var threadCandidates: [String] {
        var seen = Set<String>()
        return (inReplyTo + references.reversed()).filter { seen.insert($0).inserted }
    }
}
