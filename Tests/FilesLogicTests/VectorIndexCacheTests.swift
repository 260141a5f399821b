import Files
import Foundation
import SwitchboardCore
import Storage
import Synchronization
import Testing

/// Vectors by owner in memory, counting the loads the cache makes.
final class MemoryVectors: DocumentStore {
    let vectorsByOwner = Mutex<[Int64: [StoredVector]]>([:])
    let loadCount = Mutex(0)

    func put(owner: Int64, _ vectors: [[Float]]) {
        vectorsByOwner.withLock { all in
            all[owner] = vectors.enumerated().map { StoredVector(chunkID: Int64($0.offset + 1), fileID: 1, bytes: VectorCoding.encode($0.element), norm: 1) }
        }
    }

    func vectors(ownerID: Int64, model: String, dimension: Int) async throws -> [StoredVector] {
        loadCount.withLock { $0 += 1 }
        return vectorsByOwner.withLock { $0[ownerID] ?? [] }
    }

    func document(id: Int64, ownerID: Int64) async throws -> DocumentFile? { nil }
    func document(id: Int64) async throws -> DocumentFile? { nil }
    func documents(ownerID: Int64, limit: Int, beforeID: Int64?) async throws -> [DocumentFile] { [] }
    func setStatus(fileID: Int64, to status: FileStatus, error: String?, from: [FileStatus]?) async throws -> Bool { false }
    func replaceChunks(fileID: Int64, ownerID: Int64, model: String, chunks: [IndexedChunk]) async throws -> Bool { false }
    func hits(chunkIDs: [Int64], ownerID: Int64) async throws -> [ChunkHit] { [] }
    func hasChunks(ownerID: Int64, model: String) async throws -> Bool { false }
    func setTopic(fileID: Int64, ownerID: Int64, topicID: Int64?) async throws -> DocumentFile? { nil }
    func deleteDocument(id: Int64, ownerID: Int64) async throws -> DocumentFile? { nil }
    func extractedDocuments(ownerID: Int64?) async throws -> [DocumentFile] { [] }
    func documents(ids: [Int64], ownerID: Int64) async throws -> [DocumentFile] { [] }
    func attach(fileIDs: [Int64], messageID: Int64, ownerID: Int64) async throws {}
    func saveSources(messageID: Int64, sources: [ReplySource]) async throws {}
    func sources(messageID: Int64) async throws -> [ReplySource] { [] }
}

@Suite struct VectorIndexCacheTests {
    @Test func anOwnersIndexIsLoadedOnceAndDroppedWhenChanged() async throws {
        let store = MemoryVectors()
        store.put(owner: 1, [[1, 0], [0, 1]])
        let cache = VectorIndexCache(documents: store)
        #expect(try await cache.index(ownerID: 1, model: "m", dimension: 2).count == 2)
        #expect(try await cache.index(ownerID: 1, model: "m", dimension: 2).count == 2)
        #expect(store.loadCount.withLock { $0 } == 1)

        store.put(owner: 1, [[1, 0]])
        await cache.invalidate(ownerID: 1)
        #expect(try await cache.index(ownerID: 1, model: "m", dimension: 2).count == 1)
        #expect(store.loadCount.withLock { $0 } == 2)
    }

    @Test func theLeastRecentlyUsedOwnerIsDroppedFirst() async throws {
        let store = MemoryVectors()
        for owner in 1...3 { store.put(owner: Int64(owner), [[Float(owner), 1]]) }
        let cache = VectorIndexCache(documents: store, maxOwners: 2)
        _ = try await cache.index(ownerID: 1, model: "m", dimension: 2)
        _ = try await cache.index(ownerID: 2, model: "m", dimension: 2)
        _ = try await cache.index(ownerID: 1, model: "m", dimension: 2)  // 1 is now the most recent
        _ = try await cache.index(ownerID: 3, model: "m", dimension: 2)
        #expect(await cache.isCached(ownerID: 1))
        #expect(await !cache.isCached(ownerID: 2))
        #expect(await cache.isCached(ownerID: 3))
        #expect(await cache.ownerCount == 2)
    }

    @Test func aByteBudgetBoundsTheCache() async throws {
        let store = MemoryVectors()
        let big = (0..<100).map { _ in [Float](repeating: 1, count: 64) }
        for owner in 1...4 { store.put(owner: Int64(owner), big) }
        // One owner's index is 100 × (64 × 4 + 24) bytes (vector, chunk, file and topic ids); the budget holds two.
        let cache = VectorIndexCache(documents: store, maxOwners: 100, maxBytes: 2 * 100 * (64 * 4 + 24))
        for owner in 1...4 { _ = try await cache.index(ownerID: Int64(owner), model: "m", dimension: 64) }
        #expect(await cache.ownerCount == 2)
        #expect(await cache.isCached(ownerID: 4))
    }

    @Test func modelsAndOwnersAreSeparate() async throws {
        let store = MemoryVectors()
        store.put(owner: 1, [[1, 0]])
        let cache = VectorIndexCache(documents: store)
        #expect(try await cache.index(ownerID: 2, model: "m", dimension: 2).count == 0)
        _ = try await cache.index(ownerID: 1, model: "m", dimension: 2)
        _ = try await cache.index(ownerID: 1, model: "other", dimension: 2)
        #expect(store.loadCount.withLock { $0 } == 3)
    }
}
