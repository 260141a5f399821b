import Foundation
import Logging
import RedisClient
import Storage

/// The Redis channel on which a change to an owner's chunks is announced (payload: the owner id).
public enum IndexInvalidation {
    public static let channel = "files:index-changed"

    /// Tells every node (this one included, through its subscription) to drop `ownerID`'s index.
    public static func announce(ownerID: Int64, redis: RedisClient, logger: Logger) async {
        do {
            _ = try await redis.publish(channel, String(ownerID))
        } catch {
            // The nodes' TTL bounds how long they serve the old index.
            logger.warning("index change not announced", metadata: ["owner": "\(ownerID)", "error": "\(error)"])
        }
    }
}

/// Per-owner in-process indexes, loaded from MariaDB on first use, dropped when Redis announces a
/// change to the owner's chunks (or after `ttl`, since pub/sub may lose a message), and bounded:
/// at most `maxOwners` indexes and `maxBytes` of vectors, the least recently used dropped first.
public actor VectorIndexCache {
    struct Key: Hashable {
        var ownerID: Int64
        var model: String
        var dimension: Int
    }

    private struct Entry {
        var index: VectorIndex
        var loaded: ContinuousClock.Instant
        var lastUse: UInt64
    }

    private let documents: any DocumentStore
    private let maxOwners: Int
    private let maxBytes: Int
    private let ttl: Duration
    private let logger: Logger
    private var entries: [Key: Entry] = [:]
    private var loading: [Key: Task<VectorIndex, any Error>] = [:]
    /// Bumped by every invalidation of the owner: a load that began before it is not kept.
    private var generations: [Int64: UInt64] = [:]
    private var clock: UInt64 = 0
    private var listener: Task<Void, Never>?
    private var subscriber: RedisSubscriber?
    /// Loads from the database so far (tests and metrics).
    public private(set) var loads = 0
    public private(set) var invalidations = 0

    public init(
        documents: any DocumentStore, maxOwners: Int = 256, maxBytes: Int = 512 << 20, ttl: Duration = .seconds(300),
        logger: Logger = Logger(label: "switchboard.files.index")
    ) {
        self.documents = documents
        self.maxOwners = max(1, maxOwners)
        self.maxBytes = max(1, maxBytes)
        self.ttl = ttl
        self.logger = logger
    }

    /// Listens for index changes announced by any node.
    public func start(redis: RedisClient) async throws {
        guard listener == nil else { return }
        let subscriber = redis.makeSubscriber()
        self.subscriber = subscriber
        try await subscriber.subscribe([IndexInvalidation.channel])
        listener = Task { [weak self] in
            for await message in subscriber.messages {
                guard let owner = Int64(message.text) else { continue }
                await self?.invalidate(ownerID: owner)
            }
        }
    }

    public func stop() async {
        listener?.cancel()
        listener = nil
        await subscriber?.close()
        subscriber = nil
    }

    /// Drops every index of the owner, and any load under way.
    public func invalidate(ownerID: Int64) {
        invalidations += 1
        generations[ownerID, default: 0] &+= 1
        for key in entries.keys where key.ownerID == ownerID { entries[key] = nil }
        for key in loading.keys where key.ownerID == ownerID { loading[key] = nil }
    }

    /// Whether the owner's index is held now (for tests).
    public func isCached(ownerID: Int64) -> Bool { entries.keys.contains { $0.ownerID == ownerID } }

    /// Owners held now.
    public var ownerCount: Int { Set(entries.keys.map(\.ownerID)).count }

    /// The owner's index of `model` vectors with `dimension` values.
    public func index(ownerID: Int64, model: String, dimension: Int) async throws -> VectorIndex {
        let key = Key(ownerID: ownerID, model: model, dimension: dimension)
        clock &+= 1
        if var entry = entries[key], ContinuousClock.now - entry.loaded < ttl {
            entry.lastUse = clock
            entries[key] = entry
            return entry.index
        }
        if let task = loading[key] { return try await task.value }
        let generation = generations[ownerID, default: 0]
        let documents = self.documents
        let task = Task { () throws -> VectorIndex in
            let stored = try await documents.vectors(ownerID: ownerID, model: model, dimension: dimension)
            return VectorIndex(dimension: dimension, stored: stored)
        }
        loading[key] = task
        let index: VectorIndex
        do {
            index = try await task.value
        } catch {
            if loading[key] == task { loading[key] = nil }
            throw error
        }
        loads += 1
        if loading[key] == task { loading[key] = nil }
        // Kept only when no change was announced while it loaded.
        if generations[ownerID, default: 0] == generation {
            clock &+= 1
            entries[key] = Entry(index: index, loaded: .now, lastUse: clock)
            evict()
        }
        return index
    }

    private func evict() {
        var bytes = entries.values.reduce(0) { $0 + $1.index.byteCount }
        while entries.count > 1, entries.count > maxOwners || bytes > maxBytes {
            guard let oldest = entries.min(by: { $0.value.lastUse < $1.value.lastUse }) else { break }
            bytes -= oldest.value.index.byteCount
            entries[oldest.key] = nil
            logger.debug("index evicted", metadata: ["owner": "\(oldest.key.ownerID)"])
        }
    }
}
