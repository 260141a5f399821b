import Foundation
import SwitchboardCore

public struct MariaDBFileStore: FileStore {
    let database: Database

    public init(database: Database) { self.database = database }

    public func createFile(_ file: NewFile) async throws -> StoredFile {
        let now = Date.databaseNow()
        let result = try await database.execute(
            """
            INSERT INTO files (user_id, chat_id, message_id, name, mime_type, size_bytes, sha256, storage_path, topic_id, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [.int(file.ownerID), .optional(file.chatID), .optional(file.messageID), .string(file.name), .string(file.mimeType),
             .int(file.size), .string(file.sha256), .string(file.storagePath), .optional(file.topicID), .date(now), .date(now)])
        return StoredFile(
            id: result.lastInsertID, ownerID: file.ownerID, chatID: file.chatID, messageID: file.messageID, name: file.name,
            mimeType: file.mimeType, size: file.size, sha256: file.sha256, storagePath: file.storagePath, createdAt: now,
            updatedAt: now)
    }

    public func file(id: Int64, ownerID: Int64) async throws -> StoredFile? {
        try await database.queryFirst("SELECT \(StoredFile.columns) FROM files WHERE id = ? AND user_id = ?", [.int(id), .int(ownerID)])
            .map(StoredFile.init(row:))
    }

    public func file(id: Int64) async throws -> StoredFile? {
        try await database.queryFirst("SELECT \(StoredFile.columns) FROM files WHERE id = ?", [.int(id)]).map(StoredFile.init(row:))
    }

    public func files(ownerID: Int64, chatID: Int64?, limit: Int) async throws -> [StoredFile] {
        try await database.query(
            "SELECT \(StoredFile.columns) FROM files WHERE user_id = ? AND (? IS NULL OR chat_id = ?) ORDER BY id DESC LIMIT ?",
            [.int(ownerID), .optional(chatID), .optional(chatID), .int(pageSize(limit))]
        ).map(StoredFile.init(row:))
    }

    public func files(messageID: Int64) async throws -> [StoredFile] {
        try await database.query("SELECT \(StoredFile.columns) FROM files WHERE message_id = ? ORDER BY id", [.int(messageID)])
            .map(StoredFile.init(row:))
    }

    public func updateExtraction(id: Int64, status: StoredFile.ExtractStatus, text: String?, error: String?) async throws -> Bool {
        try await database.execute(
            "UPDATE files SET extract_status = ?, extracted_text = COALESCE(?, extracted_text), extract_error = ?, updated_at = ? WHERE id = ?",
            [.string(status.rawValue), .optional(text), .optional(error), .date(.databaseNow()), .int(id)]
        ).affectedRows > 0
    }

    public func deleteFile(id: Int64, ownerID: Int64) async throws -> Bool {
        try await database.execute("DELETE FROM files WHERE id = ? AND user_id = ?", [.int(id), .int(ownerID)]).affectedRows > 0
    }
}

public struct MariaDBChunkStore: ChunkStore {
    let database: Database

    public init(database: Database) { self.database = database }

    public func insertChunks(fileID: Int64, ownerID: Int64, chunks: [NewChunk]) async throws -> [Chunk] {
        try await database.transaction { tx in
            // The file must be the owner's: chunks inherit its owner.
            guard try await tx.queryFirst("SELECT id FROM files WHERE id = ? AND user_id = ?", [.int(fileID), .int(ownerID)]) != nil else {
                throw DatabaseError(code: .foreignKeyViolation, message: "file \(fileID) does not belong to user \(ownerID)")
            }
            let now = Date.databaseNow()
            var saved: [Chunk] = []
            for chunk in chunks {
                let result = try await tx.execute(
                    "INSERT INTO chunks (file_id, user_id, ordinal, text, embedding, dim, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [.int(fileID), .int(ownerID), .int(chunk.ordinal), .string(chunk.text),
                     chunk.embedding.isEmpty ? .null : .blob(VectorCoding.encode(chunk.embedding)), .int(chunk.embedding.count),
                     .date(now)])
                saved.append(
                    Chunk(
                        id: result.lastInsertID, fileID: fileID, ownerID: ownerID, ordinal: chunk.ordinal, text: chunk.text,
                        embedding: chunk.embedding, createdAt: now))
            }
            return saved
        }
    }

    public func chunks(fileID: Int64, ownerID: Int64) async throws -> [Chunk] {
        try await database.query(
            "SELECT \(Chunk.columns) FROM chunks WHERE file_id = ? AND user_id = ? ORDER BY ordinal", [.int(fileID), .int(ownerID)]
        ).map(Chunk.init(row:))
    }

    public func deleteChunks(fileID: Int64, ownerID: Int64) async throws -> Int {
        Int(try await database.execute("DELETE FROM chunks WHERE file_id = ? AND user_id = ?", [.int(fileID), .int(ownerID)]).affectedRows)
    }

    /// MariaDB 10.11 has no vector index: the owner and dimension filter runs in SQL (index
    /// chunks_user_dim) and reads only ids and embeddings; the cosine ranking runs in process on the
    /// raw float32 bytes, keeping the best `limit`; then only those chunks are read whole.
    public func nearestChunks(ownerID: Int64, query: [Float], limit: Int) async throws -> [ScoredChunk] {
        guard !query.isEmpty, limit > 0 else { return [] }
        let candidates = try await database.query(
            "SELECT id, embedding FROM chunks WHERE user_id = ? AND dim = ? AND embedding IS NOT NULL",
            [.int(ownerID), .int(query.count)])
        let queryNorm = query.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
        guard queryNorm > 0 else { return [] }
        var best: [(id: Int64, score: Float)] = []
        best.reserveCapacity(limit + 1)
        for row in candidates {
            guard case .int(let id) = row[0], case .blob(let blob) = row[1] else { continue }
            let score = VectorCoding.cosineSimilarity(query, queryNorm: queryNorm, encoded: blob)
            if best.count == limit, let worst = best.last, worst.score >= score { continue }
            let index = best.firstIndex { $0.score < score } ?? best.endIndex
            best.insert((id, score), at: index)
            if best.count > limit { best.removeLast() }
        }
        guard !best.isEmpty else { return [] }
        let placeholders = Array(repeating: "?", count: best.count).joined(separator: ", ")
        let rows = try await database.query(
            "SELECT \(Chunk.columns) FROM chunks WHERE user_id = ? AND id IN (\(placeholders))",
            [.int(ownerID)] + best.map { .int($0.id) })
        var chunks: [Int64: Chunk] = [:]
        for row in rows {
            let chunk = try Chunk(row: row)
            chunks[chunk.id] = chunk
        }
        return best.compactMap { entry in chunks[entry.id].map { ScoredChunk(chunk: $0, score: entry.score) } }
    }
}
