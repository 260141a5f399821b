/// Where a mail's attachments become the message's files: each goes through the files module's
/// intake (`FileIntake.attach`: sniffed, stored under the files directory, its extraction and
/// indexing queued; a type Switchboard does not read is kept as a `failed` file that says so),
/// linked to the message and its chat before the turn is queued, so the turn reads them like
/// any upload. Attachments over the size limit are refused (413) before anything is stored.
import Files
import Foundation
import Mail
import Storage
import SwitchboardCore

public struct EmailAttachmentStore: Sendable {
    public var intake: FileIntake
    /// The largest attachment accepted, in bytes.
    public var maxBytes: Int

    public init(intake: FileIntake, maxBytes: Int) {
        self.intake = intake
        self.maxBytes = maxBytes
    }

    /// Throws 413 `payload_too_large` when an attachment is over the limit.
    public func checkSizes(_ attachments: [MailAttachment]) throws {
        if let large = attachments.first(where: { $0.data.count > maxBytes }) {
            throw SwitchboardError(
                .payloadTooLarge, status: 413,
                "attachment '\(large.filename)' is \(large.data.count) bytes; the limit is \(maxBytes) (channels.email_max_attachment_bytes)")
        }
    }

    /// Stores `attachments` as files of `message`.
    public func store(_ attachments: [MailAttachment], message: Message) async throws -> [DocumentFile] {
        var stored: [DocumentFile] = []
        for attachment in attachments {
            stored.append(try await intake.attach(
                ownerID: message.ownerID, name: attachment.filename, data: Data(attachment.data), mimeType: attachment.contentType,
                chatID: message.chatID, messageID: message.id))
        }
        return stored
    }
}
