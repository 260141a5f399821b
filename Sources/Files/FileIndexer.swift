import AIProviders
import Foundation
import Logging
import RedisClient
import Storage
import SwitchboardCore

/// Embeds texts with the provider's `embed` model, `batchSize` texts per request (the provider
/// retries 429, 5xx and unreachable servers with backoff; a batch that still fails fails the
/// job, which the queue retries).
public struct Embedder: Sendable {
    public var provider: any AIProvider
    public var batchSize: Int

    public init(provider: any AIProvider, batchSize: Int = 16) {
        self.provider = provider
        self.batchSize = max(1, batchSize)
    }

    /// The model every vector of this node is made by (stored with each vector; searches filter on it).
    public var model: String { provider.model(for: .embed) }

    public func embed(_ texts: [String]) async throws -> [[Float]] {
        var vectors: [[Float]] = []
        vectors.reserveCapacity(texts.count)
        var start = 0
        while start < texts.count {
            let batch = Array(texts[start..<min(texts.count, start + batchSize)])
            // No model named: the provider's `embed` slot, or a `misconfigured` error when none is set
            // (never the chat model by accident).
            let result = try await provider.embed(batch, model: nil)
            guard result.vectors.count == batch.count else {
                throw AIProviderError(.invalidResponse, "asked for \(batch.count) embeddings, got \(result.vectors.count)")
            }
            if let dimension = vectors.first?.count ?? result.vectors.first?.count,
               result.vectors.contains(where: { $0.count != dimension || $0.isEmpty }) {
                throw AIProviderError(.invalidResponse, "the embeddings differ in size")
            }
            vectors += result.vectors
            start += batch.count
        }
        return vectors
    }
}

/// The `index` job's work: the file's extracted text → chunks → vectors → one transaction that
/// replaces the file's chunks and marks it `indexed` → every node told to drop the owner's index.
/// Run twice (a worker died after the commit), it ends the same: one set of chunks.
public struct FileIndexer: Sendable {
    public var files: any FileStore
    public var documents: any DocumentStore
    public var embedder: Embedder
    public var chunker: Chunker
    public var redis: RedisClient?
    public var logger: Logger

    public init(
        files: any FileStore, documents: any DocumentStore, embedder: Embedder, chunker: Chunker, redis: RedisClient?,
        logger: Logger = Logger(label: "switchboard.files.index")
    ) {
        self.files = files
        self.documents = documents
        self.embedder = embedder
        self.chunker = chunker
        self.redis = redis
        self.logger = logger
    }

    public enum Outcome: Sendable, Equatable {
        case indexed(chunks: Int)
        case failed(String)
        case gone
    }

    /// Indexes file `fileID`. Provider and database errors are thrown (the job retries); on the
    /// last attempt the file is marked failed first.
    @discardableResult
    public func run(fileID: Int64, isLastAttempt: Bool = false) async throws -> Outcome {
        guard let document = try await documents.document(id: fileID), let file = try await files.file(id: fileID) else { return .gone }
        guard let text = file.extractedText, file.extractStatus == .done else {
            let reason = file.extractError ?? "the file's text was not extracted"
            _ = try await documents.setStatus(fileID: fileID, to: .failed, error: reason, from: nil)
            return .failed(reason)
        }
        let chunks = chunker.chunks(text, linesAreParagraphs: document.mimeType == ContentSniffer.docx)
        guard !chunks.isEmpty else {
            let reason = "the file has no text to index"
            _ = try await documents.setStatus(fileID: fileID, to: .failed, error: reason, from: nil)
            return .failed(reason)
        }
        _ = try await documents.setStatus(fileID: fileID, to: .indexing, error: nil, from: [.queued, .extracting, .indexing, .indexed, .failed])
        let vectors: [[Float]]
        do {
            vectors = try await embedder.embed(chunks.map(\.text))
        } catch {
            if isLastAttempt {
                _ = try? await documents.setStatus(fileID: fileID, to: .failed, error: "the embeddings could not be made: \(error)", from: nil)
            }
            throw error
        }
        let indexed = zip(chunks, vectors).map { IndexedChunk(ordinal: $0.ordinal, text: $0.text, position: $0.position, vector: $1) }
        guard try await documents.replaceChunks(fileID: fileID, ownerID: document.ownerID, model: embedder.model, chunks: indexed) else {
            return .gone
        }
        if let redis { await IndexInvalidation.announce(ownerID: document.ownerID, redis: redis, logger: logger) }
        logger.debug("file indexed", metadata: ["file_id": "\(fileID)", "chunks": "\(indexed.count)"])
        return .indexed(chunks: indexed.count)
    }
}

/// A chunk found by a search.
public struct SearchHit: Sendable, Hashable {
    public var fileID: Int64
    public var fileName: String
    public var chunkID: Int64
    public var position: String
    public var text: String
    public var score: Float
}

/// Which of the owner's documents a search ranks.
public enum SearchScope: Sendable, Hashable {
    /// Every document of the owner.
    case all
    /// Only documents in one of these topics (none found when they have no documents).
    case topics(Set<Int64>)
    /// Documents in one of these topics when any is in them; every document of the owner otherwise.
    case preferring(Set<Int64>)
}

/// Answers a query from the owner's own chunks: the query is embedded with the same model the
/// chunks were, and only that model's vectors of that owner are ranked — all of them, or those
/// of a topic's documents (a mask over the same in-process index).
public struct FileSearch: Sendable {
    public var embedder: Embedder
    public var documents: any DocumentStore
    public var cache: VectorIndexCache

    public init(embedder: Embedder, documents: any DocumentStore, cache: VectorIndexCache) {
        self.embedder = embedder
        self.documents = documents
        self.cache = cache
    }

    public func search(ownerID: Int64, query: String, k: Int, scope: SearchScope = .all) async throws -> [SearchHit] {
        guard let vector = try await embedder.embed([query]).first, !vector.isEmpty else { return [] }
        let index = try await cache.index(ownerID: ownerID, model: embedder.model, dimension: vector.count)
        let top = index.topK(vector, k: k, topics: Self.topicMask(for: scope, in: index))
        guard !top.isEmpty else { return [] }
        let ids = top.map { index.chunkIDs[$0.row] }
        // Chunks deleted since the index was loaded are not found here, and left out.
        let found = Dictionary(uniqueKeysWithValues: try await documents.hits(chunkIDs: ids, ownerID: ownerID).map { ($0.chunkID, $0) })
        return top.compactMap { entry in
            guard let hit = found[index.chunkIDs[entry.row]] else { return nil }
            return SearchHit(fileID: hit.fileID, fileName: hit.fileName, chunkID: hit.chunkID, position: hit.position, text: hit.text, score: entry.score)
        }
    }

    /// The topics whose rows `scope` ranks in `index` (nil: every row).
    public static func topicMask(for scope: SearchScope, in index: VectorIndex) -> Set<Int64>? {
        switch scope {
        case .all: nil
        case .topics(let topics): topics
        case .preferring(let topics): index.hasRows(inAnyOf: topics) ? topics : nil
        }
    }

    /// Whether the owner has chunks this node's model can search.
    public func hasDocuments(ownerID: Int64) async throws -> Bool {
        try await documents.hasChunks(ownerID: ownerID, model: embedder.model)
    }
}
