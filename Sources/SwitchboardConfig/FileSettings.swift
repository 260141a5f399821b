import Foundation

/// The `files` section: uploads, chunking, embedding batches, the in-process search index and
/// what `rag_query` hands the chat (`SB_FILES_<KEY>` overrides each key; the keys are listed in
/// `Settings.knownKeys`).
public struct FileSettings: Sendable {
    public var storageDirectory: String
    public var maxUploadBytes: Int
    public var chunkCharacters: Int
    public var chunkOverlap: Int
    public var embedBatchSize: Int
    public var cacheOwners: Int
    public var cacheMegabytes: Int
    public var cacheTTLSeconds: Int
    public var ragChunks: Int
    public var ragMinimumScore: Double

    init(source: ConfigSource) throws {
        storageDirectory = try source.string("files.storage_dir", default: "var/files")
        maxUploadBytes = try source.int("files.max_upload_bytes", default: 20 << 20, range: 1...(1 << 30))
        chunkCharacters = try source.int("files.chunk_characters", default: 800, range: 100...20_000)
        chunkOverlap = try source.int("files.chunk_overlap", default: 100, range: 0...5_000)
        embedBatchSize = try source.int("files.embed_batch_size", default: 16, range: 1...2048)
        cacheOwners = try source.int("files.cache_owners", default: 256, range: 1...1_000_000)
        cacheMegabytes = try source.int("files.cache_megabytes", default: 512, range: 1...1_000_000)
        cacheTTLSeconds = try source.int("files.cache_ttl_seconds", default: 300, range: 1...86_400)
        ragChunks = try source.int("files.rag_chunks", default: 4, range: 1...50)
        ragMinimumScore = try source.double("files.rag_min_score", default: 0.2, range: -1...1)
        if storageDirectory.trimmingCharacters(in: .whitespaces).isEmpty {
            throw ConfigError(key: "files.storage_dir", "must name a directory")
        }
    }
}
