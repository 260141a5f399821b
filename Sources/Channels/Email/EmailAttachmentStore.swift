/// Where a mail's attachments become the message's files: the bytes written under the
/// attachments directory (by content hash, off the cooperative pool) and a `files` row each,
/// linked to the message and its chat, so the turn reads and extracts them like any upload.
/// Attachments over the size limit are refused (413) before anything is stored.
import Crypto
import Foundation
import Mail
import NIOPosix
import Storage
import SwitchboardCore

public struct EmailAttachmentStore: Sendable {
    public var files: any FileStore
    /// Where the bytes go (`{directory}/{owner}/{sha256}`).
    public var directory: String
    /// The largest attachment accepted, in bytes.
    public var maxBytes: Int

    public init(files: any FileStore, directory: String, maxBytes: Int) {
        self.files = files
        self.directory = directory
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
    public func store(_ attachments: [MailAttachment], message: Message) async throws -> [StoredFile] {
        var stored: [StoredFile] = []
        for attachment in attachments {
            let digest = SHA256.hash(data: attachment.data).map { String(format: "%02x", $0) }.joined()
            let folder = "\(directory)/\(message.ownerID)"
            let path = "\(folder)/\(digest)"
            let data = attachment.data
            try await NIOThreadPool.singleton.runIfActive {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                if !FileManager.default.fileExists(atPath: path) {
                    try Data(data).write(to: URL(fileURLWithPath: path), options: .atomic)
                }
            }
            stored.append(try await files.createFile(NewFile(
                ownerID: message.ownerID, chatID: message.chatID, messageID: message.id, name: String(attachment.filename.prefix(255)),
                mimeType: String(attachment.contentType.prefix(255)), size: Int64(data.count), sha256: digest, storagePath: path)))
        }
        return stored
    }
}
