/// The email channel's configured limits and places (`channels.email_*` in Settings): how large
/// an inbound post and an attachment may be (attachments are stored by the files module), the domain of the
/// Message-IDs Switchboard writes, extra CA certificates for SMTP and IMAP, and how often
/// mailboxes are polled.
import Foundation

public struct EmailChannelSettings: Sendable, Equatable {
    /// Largest inbound webhook body (a whole mail with its attachments), in bytes (413 above).
    public var maxMessageBytes: Int
    /// Largest single attachment, in bytes (413 above).
    public var maxAttachmentBytes: Int
    /// The domain of reply Message-IDs (nil: each channel address's domain).
    public var messageIDDomain: String?
    /// A PEM file of extra CA certificates trusted for SMTP and IMAP (nil: the system's).
    public var caFile: String?
    /// Seconds between IMAP polls of a mailbox.
    public var imapPollSeconds: Int

    public init(
        maxMessageBytes: Int = 30 << 20, maxAttachmentBytes: Int = 20 << 20,
        messageIDDomain: String? = nil, caFile: String? = nil, imapPollSeconds: Int = 60
    ) {
        self.maxMessageBytes = maxMessageBytes
        self.maxAttachmentBytes = maxAttachmentBytes
        self.messageIDDomain = messageIDDomain
        self.caFile = caFile
        self.imapPollSeconds = imapPollSeconds
    }
}
