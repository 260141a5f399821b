import Foundation
import SwitchboardCore

/// Where an uploaded file is in its life: `queued` (stored, its `extract` job waiting) →
/// `extracting` → `indexing` (chunked and embedded on the `index` queue) → `indexed`; `failed`
/// from any of them, with a readable error.
public enum FileStatus: String, Sendable, Hashable, Codable, CaseIterable {
    case queued, extracting, indexing, indexed, failed
}

/// An uploaded file as the files API and the index jobs see it.
public struct DocumentFile: Sendable, Hashable {
    public var id: Int64
    public var ownerID: Int64
    public var name: String
    public var mimeType: String
    public var size: Int64
    public var sha256: String
    public var storagePath: String
    public var status: FileStatus
    public var error: String?
    public var chunkCount: Int
    /// The embedding model of its chunks' vectors (nil until indexed).
    public var embedModel: String?
    public var createdAt: Date
    public var updatedAt: Date
    /// The routing topic the document belongs to (nil: none; searched for every topic).
    public var topicID: Int64?

    public init(
        id: Int64, ownerID: Int64, name: String, mimeType: String, size: Int64, sha256: String, storagePath: String, status: FileStatus,
        error: String?, chunkCount: Int, embedModel: String?, createdAt: Date, updatedAt: Date, topicID: Int64? = nil
    ) {
        self.topicID = topicID
        self.id = id
        self.ownerID = ownerID
        self.name = name
        self.mimeType = mimeType
        self.size = size
        self.sha256 = sha256
        self.storagePath = storagePath
        self.status = status
        self.error = error
        self.chunkCount = chunkCount
        self.embedModel = embedModel
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// A chunk to store with its vector.
public struct IndexedChunk: Sendable, Hashable {
    public var ordinal: Int
    public var text: String
    /// Page ("page 3") or section (its heading) for citations; may be empty.
    public var position: String
    public var vector: [Float]

    public init(ordinal: Int, text: String, position: String, vector: [Float]) {
        self.ordinal = ordinal
        self.text = text
        self.position = position
        self.vector = vector
    }
}

/// A chunk a search found, with its file's name.
public struct ChunkHit: Sendable, Hashable {
    public var chunkID: Int64
    public var fileID: Int64
    public var fileName: String
    public var ordinal: Int
    public var position: String
    public var text: String

    public init(chunkID: Int64, fileID: Int64, fileName: String, ordinal: Int, position: String, text: String) {
        self.chunkID = chunkID
        self.fileID = fileID
        self.fileName = fileName
        self.ordinal = ordinal
        self.position = position
        self.text = text
    }
}

/// Uploaded files, their chunks and vectors, scoped by owner (and by embedding model).
public protocol DocumentStore: Sendable {
    func document(id: Int64, ownerID: Int64) async throws -> DocumentFile?
    /// Unscoped: for the extract and index jobs.
    func document(id: Int64) async throws -> DocumentFile?
    /// Newest first, before `beforeID` when given.
    func documents(ownerID: Int64, limit: Int, beforeID: Int64?) async throws -> [DocumentFile]
    /// Sets the status (and error) when the file's status is one of `from` (any when nil); false otherwise.
    func setStatus(fileID: Int64, to status: FileStatus, error: String?, from: [FileStatus]?) async throws -> Bool
    /// Replaces the file's chunks with `chunks` and marks it `indexed`, in one transaction: a run
    /// repeated after a crash leaves one set of chunks. False when the file is gone.
    func replaceChunks(fileID: Int64, ownerID: Int64, model: String, chunks: [IndexedChunk]) async throws -> Bool
    /// Puts the owner's file in a topic (nil: none); the file as it is now, nil when it is not the owner's.
    func setTopic(fileID: Int64, ownerID: Int64, topicID: Int64?) async throws -> DocumentFile?
    /// Every vector of the owner made by `model` with `dimension` values, with its file's topic.
    func vectors(ownerID: Int64, model: String, dimension: Int) async throws -> [StoredVector]
    /// The chunks with these ids that belong to `ownerID`.
    func hits(chunkIDs: [Int64], ownerID: Int64) async throws -> [ChunkHit]
    /// Whether the owner has chunks embedded by `model`.
    func hasChunks(ownerID: Int64, model: String) async throws -> Bool
    /// Deletes the file with its chunks; answers the deleted file (its bytes are the caller's to remove).
    func deleteDocument(id: Int64, ownerID: Int64) async throws -> DocumentFile?
    /// Files whose text was extracted (of one owner when given), for a re-index.
    func extractedDocuments(ownerID: Int64?) async throws -> [DocumentFile]
    /// Files of `ownerID` among `ids` (for `fileIds` on messages).
    func documents(ids: [Int64], ownerID: Int64) async throws -> [DocumentFile]
    /// Attaches the owner's files to a message (a file belongs to the last message that named it).
    func attach(fileIDs: [Int64], messageID: Int64, ownerID: Int64) async throws
    func saveSources(messageID: Int64, sources: [ReplySource]) async throws
    func sources(messageID: Int64) async throws -> [ReplySource]
}

public struct MariaDBDocumentStore: DocumentStore {
    let database: Database

    public init(database: Database) { self.database = database }

    static let columns = """
        id, user_id, name, mime_type, size_bytes, sha256, storage_path, status, status_error, chunk_count, embed_model, \
        topic_id, created_at, updated_at
        """

    public func document(id: Int64, ownerID: Int64) async throws -> DocumentFile? {
        try await database.queryFirst("SELECT \(Self.columns) FROM files WHERE id = ? AND user_id = ?", [.int(id), .int(ownerID)])
            .map(DocumentFile.init(row:))
    }

    public func document(id: Int64) async throws -> DocumentFile? {
        try await database.queryFirst("SELECT \(Self.columns) FROM files WHERE id = ?", [.int(id)]).map(DocumentFile.init(row:))
    }

    public func documents(ownerID: Int64, limit: Int, beforeID: Int64?) async throws -> [DocumentFile] {
        try await database.query(
            "SELECT \(Self.columns) FROM files WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
            [.int(ownerID), .int(beforeID ?? .max), .int(pageSize(limit))]
        ).map(DocumentFile.init(row:))
    }

    public func documents(ids: [Int64], ownerID: Int64) async throws -> [DocumentFile] {
        guard !ids.isEmpty else { return [] }
        let placeholders = Array(repeating: "?", count: ids.count).joined(separator: ", ")
        return try await database.query(
            "SELECT \(Self.columns) FROM files WHERE user_id = ? AND id IN (\(placeholders)) ORDER BY id",
            [.int(ownerID)] + ids.map { .int($0) }
        ).map(DocumentFile.init(row:))
    }

    public func setStatus(fileID: Int64, to status: FileStatus, error: String?, from: [FileStatus]?) async throws -> Bool {
        var sql = "UPDATE files SET status = ?, status_error = ?, updated_at = ? WHERE id = ?"
        var values: [DatabaseValue] = [.string(status.rawValue), .optional(error.map { String($0.prefix(2000)) }), .date(.databaseNow()), .int(fileID)]
        if let from, !from.isEmpty {
            sql += " AND status IN (" + Array(repeating: "?", count: from.count).joined(separator: ", ") + ")"
            values += from.map { .string($0.rawValue) }
        }
        return try await database.execute(sql, values).affectedRows > 0
    }

    public func replaceChunks(fileID: Int64, ownerID: Int64, model: String, chunks: [IndexedChunk]) async throws -> Bool {
        try await database.transaction { tx in
            // The row lock orders this run against a concurrent run of the same file and a delete.
            guard try await tx.queryFirst("SELECT id FROM files WHERE id = ? AND user_id = ? FOR UPDATE", [.int(fileID), .int(ownerID)]) != nil else {
                return false
            }
            _ = try await tx.execute("DELETE FROM chunks WHERE file_id = ?", [.int(fileID)])
            let now = Date.databaseNow()
            var start = 0
            while start < chunks.count {
                let batch = chunks[start..<min(chunks.count, start + 100)]
                let rows = Array(repeating: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", count: batch.count).joined(separator: ", ")
                var values: [DatabaseValue] = []
                values.reserveCapacity(batch.count * 10)
                for chunk in batch {
                    values += [
                        .int(fileID), .int(ownerID), .int(chunk.ordinal), .string(chunk.text), .string(String(chunk.position.prefix(200))),
                        .blob(VectorCoding.encode(chunk.vector)), .int(chunk.vector.count), .string(model),
                        .double(Double(VectorCoding.norm(chunk.vector))), .date(now),
                    ]
                }
                _ = try await tx.execute(
                    "INSERT INTO chunks (file_id, user_id, ordinal, text, position, embedding, dim, model, norm, created_at) VALUES \(rows)", values)
                start += batch.count
            }
            _ = try await tx.execute(
                "UPDATE files SET status = 'indexed', status_error = NULL, chunk_count = ?, embed_model = ?, updated_at = ? WHERE id = ?",
                [.int(chunks.count), .string(model), .date(now), .int(fileID)])
            return true
        }
    }

    public func setTopic(fileID: Int64, ownerID: Int64, topicID: Int64?) async throws -> DocumentFile? {
        _ = try await database.execute(
            "UPDATE files SET topic_id = ?, updated_at = ? WHERE id = ? AND user_id = ?",
            [.optional(topicID), .date(.databaseNow()), .int(fileID), .int(ownerID)])
        return try await document(id: fileID, ownerID: ownerID)
    }

    public func vectors(ownerID: Int64, model: String, dimension: Int) async throws -> [StoredVector] {
        try await database.query(
            """
            SELECT c.id, c.file_id, c.embedding, c.norm, f.topic_id FROM chunks c JOIN files f ON f.id = c.file_id
            WHERE c.user_id = ? AND c.model = ? AND c.dim = ? AND c.embedding IS NOT NULL ORDER BY c.id
            """,
            [.int(ownerID), .string(model), .int(dimension)]
        ).map { row in
            StoredVector(
                chunkID: try row.int("id"), fileID: try row.int("file_id"), bytes: try row.data("embedding"), norm: Float(try row.double("norm")),
                topicID: try row.optionalInt("topic_id"))
        }
    }

    public func hits(chunkIDs: [Int64], ownerID: Int64) async throws -> [ChunkHit] {
        guard !chunkIDs.isEmpty else { return [] }
        let placeholders = Array(repeating: "?", count: chunkIDs.count).joined(separator: ", ")
        return try await database.query(
            """
            SELECT c.id, c.file_id, f.name, c.ordinal, c.position, c.text FROM chunks c JOIN files f ON f.id = c.file_id
            WHERE c.user_id = ? AND c.id IN (\(placeholders))
            """,
            [.int(ownerID)] + chunkIDs.map { .int($0) }
        ).map { row in
            ChunkHit(
                chunkID: try row.int("id"), fileID: try row.int("file_id"), fileName: try row.string("name"),
                ordinal: Int(try row.int("ordinal")), position: try row.string("position"), text: try row.string("text"))
        }
    }

    public func hasChunks(ownerID: Int64, model: String) async throws -> Bool {
        try await database.queryFirst("SELECT 1 AS found FROM chunks WHERE user_id = ? AND model = ? LIMIT 1", [.int(ownerID), .string(model)]) != nil
    }

    public func deleteDocument(id: Int64, ownerID: Int64) async throws -> DocumentFile? {
        try await database.transaction { tx in
            guard let row = try await tx.queryFirst(
                "SELECT \(Self.columns) FROM files WHERE id = ? AND user_id = ? FOR UPDATE", [.int(id), .int(ownerID)])
            else { return nil }
            let file = try DocumentFile(row: row)
            _ = try await tx.execute("DELETE FROM chunks WHERE file_id = ?", [.int(id)])
            _ = try await tx.execute("DELETE FROM files WHERE id = ? AND user_id = ?", [.int(id), .int(ownerID)])
            return file
        }
    }

    public func extractedDocuments(ownerID: Int64?) async throws -> [DocumentFile] {
        try await database.query(
            "SELECT \(Self.columns) FROM files WHERE extract_status = 'done' AND (? IS NULL OR user_id = ?) ORDER BY id",
            [.optional(ownerID), .optional(ownerID)]
        ).map(DocumentFile.init(row:))
    }

    public func attach(fileIDs: [Int64], messageID: Int64, ownerID: Int64) async throws {
        guard !fileIDs.isEmpty else { return }
        let placeholders = Array(repeating: "?", count: fileIDs.count).joined(separator: ", ")
        _ = try await database.execute(
            "UPDATE files SET message_id = ?, updated_at = ? WHERE user_id = ? AND id IN (\(placeholders))",
            [.int(messageID), .date(.databaseNow()), .int(ownerID)] + fileIDs.map { .int($0) })
    }

    public func saveSources(messageID: Int64, sources: [ReplySource]) async throws {
        guard !sources.isEmpty else { return }
        try await database.transaction { tx in
            _ = try await tx.execute("DELETE FROM message_sources WHERE message_id = ?", [.int(messageID)])
            // A file deleted meanwhile: its source is kept by name, without the id.
            let rows = Array(repeating: "(?, ?, (SELECT id FROM files WHERE id = ?), ?, ?, ?)", count: sources.count).joined(separator: ", ")
            var values: [DatabaseValue] = []
            for (index, source) in sources.enumerated() {
                values += [
                    .int(messageID), .int(index), .int(source.fileId ?? 0), .string(String(source.name.prefix(255))),
                    .string(String(source.position.prefix(200))), .double(Double(source.score)),
                ]
            }
            _ = try await tx.execute(
                "INSERT INTO message_sources (message_id, ordinal, file_id, file_name, position, score) VALUES \(rows)", values)
        }
    }

    public func sources(messageID: Int64) async throws -> [ReplySource] {
        try await database.query(
            "SELECT file_id, file_name, position, score FROM message_sources WHERE message_id = ? ORDER BY ordinal", [.int(messageID)]
        ).map { row in
            ReplySource(
                fileId: try row.optionalInt("file_id"), name: try row.string("file_name"), position: try row.string("position"),
                score: Float(try row.double("score")))
        }
    }
}

extension DocumentFile {
    init(row: Row) throws {
        self.init(
            id: try row.int("id"), ownerID: try row.int("user_id"), name: try row.string("name"), mimeType: try row.string("mime_type"),
            size: try row.int("size_bytes"), sha256: try row.string("sha256"), storagePath: try row.string("storage_path"),
            status: try row.enumValue("status"), error: try row.optionalString("status_error"),
            chunkCount: Int(try row.int("chunk_count")), embedModel: try row.optionalString("embed_model"),
            createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"), topicID: try row.optionalInt("topic_id"))
    }
}
