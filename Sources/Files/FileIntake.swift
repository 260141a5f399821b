import Crypto
import Foundation
import Logging
import NIOPosix
import Queue
import Storage
import SwitchboardCore

/// Why an upload was refused.
public typealias FileIntakeError = CodedError<FileIntakeFailure>

public enum FileIntakeFailure {}

extension ErrorCode where Kind == FileIntakeFailure {
    public static var empty: Self { "empty_file" }
    public static var tooLarge: Self { "file_too_large" }
    public static var unsupported: Self { "unsupported_file" }
    public static var unavailable: Self { "unavailable" }
}

/// Turns bytes into a stored file of an owner and queues its extraction: the one call every way
/// in makes (the upload route, a channel's attachments). Nothing is left half-stored: when the
/// row or the job cannot be written, the bytes and the row are removed again.
public struct FileIntake: Sendable {
    public var files: any FileStore
    public var documents: any DocumentStore
    public var jobs: any JobProducer
    public var configuration: FilesConfiguration
    private let threadPool: NIOThreadPool

    public init(
        files: any FileStore, documents: any DocumentStore, jobs: any JobProducer, configuration: FilesConfiguration,
        threadPool: NIOThreadPool = .singleton
    ) {
        self.files = files
        self.documents = documents
        self.jobs = jobs
        self.configuration = configuration
        self.threadPool = threadPool
    }

    public init(stores: Stores, jobs: any JobProducer, configuration: FilesConfiguration) {
        self.init(files: stores.files, documents: stores.documents, jobs: jobs, configuration: configuration)
    }

    /// Stores `data` as a file of `ownerID` named `name` and queues its extraction.
    public func create(ownerID: Int64, name: String, data: Data, chatID: Int64? = nil, messageID: Int64? = nil) async throws -> DocumentFile {
        guard !data.isEmpty else { throw FileIntakeError(.empty, "the file is empty (0 bytes)") }
        guard data.count <= configuration.maxUploadBytes else {
            throw FileIntakeError(.tooLarge, "the file has \(data.count) bytes; at most \(configuration.maxUploadBytes) are accepted")
        }
        let name = Self.cleanName(name)
        let mimeType = try Self.sniffed(data.prefix(ContentSniffer.prefixLength), name: name)
        let (path, digest) = try await write(data, ownerID: ownerID)
        return try await register(
            NewFile(ownerID: ownerID, chatID: chatID, messageID: messageID, name: name, mimeType: mimeType, size: Int64(data.count),
                    sha256: digest, storagePath: path))
    }

    /// Writes `data` to a new place of the owner's (off the cooperative pool); answers the path and its SHA-256.
    func write(_ data: Data, ownerID: Int64) async throws -> (path: String, sha256: String) {
        let path = newPath(ownerID: ownerID)
        try await threadPool.runIfActive {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            guard FileManager.default.createFile(atPath: path, contents: data) else {
                throw FileIntakeError(.unavailable, "the file could not be stored")
            }
        }
        return (path, SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined())
    }

    /// Stores a channel's attachment (a mail's, a WhatsApp media message's) as a file of its
    /// message. A document Switchboard reads goes through `create` (sniffed, extraction queued);
    /// anything else (an image, a voice note, a file over the upload limit, an empty one) is kept
    /// as a `failed` file whose error says why it is not read, so the message never loses it and
    /// its owner sees it listed. `mimeType` is the sender's claim, kept only for such a file.
    public func attach(
        ownerID: Int64, name: String, data: Data, mimeType: String?, chatID: Int64?, messageID: Int64?
    ) async throws -> DocumentFile {
        do {
            return try await create(ownerID: ownerID, name: name, data: data, chatID: chatID, messageID: messageID)
        } catch let refused as FileIntakeError where refused.code != .unavailable {
            let claimed = Self.cleanType(mimeType)
            // Bytes over the limit are not kept; anything else is, for its owner to download.
            guard refused.code != .tooLarge, !data.isEmpty else {
                return try await recordFailed(
                    ownerID: ownerID, name: name, mimeType: claimed, size: Int64(data.count), chatID: chatID, messageID: messageID,
                    error: refused.message)
            }
            let (path, digest) = try await write(data, ownerID: ownerID)
            return try await recordFailed(
                NewFile(ownerID: ownerID, chatID: chatID, messageID: messageID, name: Self.cleanName(name), mimeType: claimed,
                        size: Int64(data.count), sha256: digest, storagePath: path),
                error: "kept, not read: \(refused.message)")
        }
    }

    /// Records an attachment whose bytes could not be had (a failed download): a `failed` file
    /// without bytes, with `error` for its owner to read.
    public func recordFailed(
        ownerID: Int64, name: String, mimeType: String, size: Int64 = 0, chatID: Int64?, messageID: Int64?, error: String
    ) async throws -> DocumentFile {
        try await recordFailed(
            NewFile(ownerID: ownerID, chatID: chatID, messageID: messageID, name: Self.cleanName(name), mimeType: Self.cleanType(mimeType),
                    size: size, sha256: "", storagePath: ""),
            error: error)
    }

    /// Stores the row of a file that will not be extracted, then marks it `failed` with `error`
    /// (the extraction status too, so a turn does not try to read it).
    func recordFailed(_ file: NewFile, error: String) async throws -> DocumentFile {
        let stored: StoredFile
        do {
            stored = try await files.createFile(file)
        } catch {
            if !file.storagePath.isEmpty { await removeBytes(at: file.storagePath) }
            throw error
        }
        let text = String(error.prefix(2000))
        _ = try await documents.setStatus(fileID: stored.id, to: .failed, error: text, from: nil)
        _ = try await files.updateExtraction(id: stored.id, status: .failed, text: nil, error: text)
        guard let document = try await documents.document(id: stored.id, ownerID: file.ownerID) else {
            throw FileIntakeError(.unavailable, "file \(stored.id) vanished while it was stored")
        }
        return document
    }

    /// A claimed content type as stored: at most 255 characters, `application/octet-stream` when absent.
    static func cleanType(_ type: String?) -> String {
        let trimmed = (type ?? "").trimmingCharacters(in: .whitespaces)
        return trimmed.isEmpty ? "application/octet-stream" : String(trimmed.prefix(255))
    }

    /// A new place for an owner's upload (the streamed upload writes there, then calls `register`).
    public func newPath(ownerID: Int64) -> String {
        (configuration.storageDirectory as NSString).appendingPathComponent("\(ownerID)/\(UUID().uuidString.lowercased())")
    }

    /// Records bytes already written to `file.storagePath` and queues their extraction; removes
    /// the bytes (and the row) when either fails.
    public func register(_ file: NewFile) async throws -> DocumentFile {
        let stored: StoredFile
        do {
            stored = try await files.createFile(file)
        } catch {
            await removeBytes(at: file.storagePath)
            throw error
        }
        // As stored (`queued`): read before the job is queued, which a worker may start at once.
        let document: DocumentFile?
        do {
            document = try await documents.document(id: stored.id, ownerID: file.ownerID)
            try await jobs.enqueue(
                ExtractJob(fileId: stored.id), on: ExtractJob.queue, options: EnqueueOptions(idempotencyKey: "extract:\(stored.id)"))
        } catch {
            _ = try? await files.deleteFile(id: stored.id, ownerID: file.ownerID)
            await removeBytes(at: file.storagePath)
            throw FileIntakeError(.unavailable, "the file could not be queued for extraction: \(error)")
        }
        guard let document else { throw FileIntakeError(.unavailable, "file \(stored.id) vanished while it was stored") }
        return document
    }

    /// Removes stored bytes (a deleted file, a refused upload); a missing file is fine.
    public func removeBytes(at path: String) async {
        _ = try? await threadPool.runIfActive { try? FileManager.default.removeItem(atPath: path) }
    }

    /// The sniffed type, or `unsupported_file`.
    public static func sniffed(_ prefix: some Collection<UInt8>, name: String) throws -> String {
        guard let type = ContentSniffer.sniff(prefix: prefix, name: name) else {
            throw FileIntakeError(.unsupported, "'\(name)' is not a supported document: text, Markdown, HTML, PDF or DOCX")
        }
        return type
    }

    /// A file name without directories or control characters, at most 255 characters.
    public static func cleanName(_ raw: String) -> String {
        let base = raw.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        let cleaned = String(base.unicodeScalars.filter { !CharacterSet.controlCharacters.contains($0) }.map(Character.init))
            .trimmingCharacters(in: .whitespaces)
        return cleaned.isEmpty ? "upload" : String(cleaned.prefix(255))
    }
}
