/// Files owns what happens to an uploaded document after its bytes arrive: `FileIntake` stores
/// them for an owner and queues their extraction (the one call a channel makes to turn bytes
/// into a file), `ContentSniffer` decides the type from the bytes, `Chunker` cuts extracted
/// text into chunks along paragraphs and headings with their position, `FileIndexer` (the
/// `index` job) embeds them in batches and stores them with their vectors, and `FileSearch`
/// answers a query from a per-owner in-process index (`VectorIndex`, exact top-k with SIMD),
/// held in a bounded LRU (`VectorIndexCache`) that every node drops when Redis announces a
/// change (`IndexInvalidation`). docs/files.md describes the whole.
import Foundation
import Queue
import Storage

/// Settings of uploads, chunking, embedding and the in-process index (`files.*`).
public struct FilesConfiguration: Sendable, Hashable {
    /// Where uploaded bytes are kept: `<directory>/<owner>/<uuid>`. Every node that extracts or
    /// serves uploads must see the same directory (one host, or a shared volume).
    public var storageDirectory: String
    /// Largest upload; a larger one is answered 413.
    public var maxUploadBytes: Int
    /// Chunks aim at this many characters (paragraphs are kept whole when they fit).
    public var chunkCharacters: Int
    /// Characters of the previous chunk repeated at the start of the next one in the same section.
    public var chunkOverlap: Int
    /// Texts per embeddings request.
    public var embedBatchSize: Int
    /// Owners whose index a node keeps in memory (least recently used dropped first).
    public var cacheOwners: Int
    /// Bytes of vectors a node keeps in memory at most.
    public var cacheBytes: Int
    /// How long a cached index is trusted without an invalidation (pub/sub is at-most-once).
    public var cacheTTL: Duration
    /// Chunks handed to the chat by `rag_query`, and the lowest score worth handing.
    public var ragChunks: Int
    public var ragMinimumScore: Float

    public init(
        storageDirectory: String = "var/files", maxUploadBytes: Int = 20 << 20, chunkCharacters: Int = 800, chunkOverlap: Int = 100,
        embedBatchSize: Int = 16, cacheOwners: Int = 256, cacheBytes: Int = 512 << 20, cacheTTL: Duration = .seconds(300),
        ragChunks: Int = 4, ragMinimumScore: Float = 0.2
    ) {
        self.storageDirectory = storageDirectory
        self.maxUploadBytes = maxUploadBytes
        self.chunkCharacters = chunkCharacters
        self.chunkOverlap = chunkOverlap
        self.embedBatchSize = embedBatchSize
        self.cacheOwners = cacheOwners
        self.cacheBytes = cacheBytes
        self.cacheTTL = cacheTTL
        self.ragChunks = ragChunks
        self.ragMinimumScore = ragMinimumScore
    }
}

/// `extract` queue: text out of an uploaded file, stored with the file; a success queues `IndexJob`.
public struct ExtractJob: JobPayload, Equatable {
    public static let name = "extract_file"
    public static let version = 1
    public static let queue: QueueName = .extract
    public var fileId: Int64

    public init(fileId: Int64) { self.fileId = fileId }
}

/// `index` queue: chunk a file's extracted text, embed the chunks and store them with their vectors.
public struct IndexJob: JobPayload, Equatable {
    public static let name = "index_file"
    public static let version = 1
    public static let queue: QueueName = .index
    public var fileId: Int64

    public init(fileId: Int64) { self.fileId = fileId }
}

/// What the api role needs of files: the upload settings, and search when an embedding provider
/// is configured (nil: the search route answers 503).
public struct FileServices: Sendable {
    public var configuration: FilesConfiguration
    public var search: FileSearch?

    public init(configuration: FilesConfiguration = .init(), search: FileSearch? = nil) {
        self.configuration = configuration
        self.search = search
    }
}
