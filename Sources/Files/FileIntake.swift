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
        let path = newPath(ownerID: ownerID)
        try await threadPool.runIfActive {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            guard FileManager.default.createFile(atPath: path, contents: data) else {
                throw FileIntakeError(.unavailable, "the file could not be stored")
            }
        }
        let digest = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
        return try await register(
            NewFile(ownerID: ownerID, chatID: chatID, messageID: messageID, name: name, mimeType: mimeType, size: Int64(data.count),
                    sha256: digest, storagePath: path))
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
