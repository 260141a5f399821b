import Foundation
import Logging
import RedisClient
import Storage
import SwitchboardCore
import Synchronization

/// Active API keys by hash, kept in process so that authenticating a request costs at most a
/// Redis GET rather than a database query.
///
/// Every change to keys (`Accounts`) increments the Redis counter `api_keys:generation` after it is
/// committed; so must any future change to what a key carries (its user's role, the user's
/// deletion). A cached key is used only while the counter still has the value read before the key
/// was loaded. A node reads the counter at most once per `generationReuse` (a busy node would
/// otherwise read it on every request) and `announceChange` returns only after that long, so
/// once a revocation has returned no node accepts the key any more. When Redis cannot be read,
/// every request asks the database; `ttl` bounds how long an entry lives at all.
public final class APIKeyCache: Sendable {
    public static let generationKey = "api_keys:generation"
    public static let defaultTTL: Duration = .seconds(60)
    /// How long a node keeps using a counter value it read, measured from when it asked.
    public static let generationReuse: Duration = .milliseconds(200)
    /// What `announceChange` waits beyond `generationReuse` (timer slack on either side).
    static let announceMargin: Duration = .milliseconds(50)

    struct Entry {
        var key: APIKey
        var user: User
        var generation: Int64
        var loaded: ContinuousClock.Instant
    }

    private let store: any APIKeyStore
    private let redis: RedisClient
    private let ttl: Duration
    private let capacity: Int
    private let entries = Mutex<[String: Entry]>([:])
    /// The counter as last read, and when the read was sent.
    private let lastGeneration = Mutex<(value: Int64, asked: ContinuousClock.Instant)?>(nil)
    /// Whether the last read of the generation failed (logged once per outage, not per request).
    private let bypassed = Atomic<Bool>(false)
    private let logger: Logger

    public init(
        store: any APIKeyStore, redis: RedisClient, ttl: Duration = defaultTTL, capacity: Int = 10_000,
        logger: Logger = Logger(label: "switchboard.api-keys")
    ) {
        self.store = store
        self.redis = redis
        self.ttl = ttl
        self.capacity = capacity
        self.logger = logger
    }

    /// Announces a committed change to keys: every node reloads the keys it cached before. Returns
    /// once no node can still be using the counter's earlier value.
    public static func announceChange(redis: RedisClient) async throws {
        _ = try await redis.incr(generationKey)
        try await Task.sleep(for: generationReuse + announceMargin)
    }

    /// The key with this hash and its user, when the key is not revoked.
    public func activeAPIKey(hash: String) async throws -> (key: APIKey, user: User)? {
        let generation: Int64?
        do {
            generation = try await currentGeneration()
            if bypassed.exchange(false, ordering: .relaxed) { logger.info("api key cache in use again") }
        } catch {
            if !bypassed.exchange(true, ordering: .relaxed) {
                logger.warning("api key cache bypassed until Redis answers: the generation could not be read", metadata: ["error": "\(error)"])
            }
            generation = nil
        }
        let now = ContinuousClock.now
        if let generation, let entry = entries.withLock({ $0[hash] }), entry.generation == generation, now - entry.loaded < ttl {
            return (entry.key, entry.user)
        }
        guard let found = try await store.activeAPIKey(hash: hash) else {
            entries.withLock { _ = $0.removeValue(forKey: hash) }
            return nil
        }
        if let generation {
            entries.withLock { entries in
                if entries.count >= capacity, entries[hash] == nil { entries.removeAll() }
                entries[hash] = Entry(key: found.key, user: found.user, generation: generation, loaded: now)
            }
        }
        return found
    }

    private func currentGeneration() async throws -> Int64 {
        let asked = ContinuousClock.now
        if let last = lastGeneration.withLock({ $0 }), asked - last.asked < Self.generationReuse { return last.value }
        let value = try await readGeneration()
        lastGeneration.withLock { last in
            if last.map({ $0.asked < asked }) ?? true { last = (value, asked) }
        }
        return value
    }

    private func readGeneration() async throws -> Int64 {
        if let value = try await redis.get(Self.generationKey) { return try Self.parse(value) }
        // A Redis that lost the counter (or never had one) starts it at a random value, so that
        // entries cached under an earlier count cannot match it again.
        try await redis.set(Self.generationKey, String(Int64.random(in: 1...(1 << 52))), condition: .nx)
        guard let value = try await redis.get(Self.generationKey) else { throw RedisError.unavailable("\(Self.generationKey) vanished") }
        return try Self.parse(value)
    }

    private static func parse(_ value: [UInt8]) throws -> Int64 {
        guard let number = Int64(String(decoding: value, as: UTF8.self)) else { throw RedisError.unavailable("\(generationKey) is not a number") }
        return number
    }

    /// Records that `last_used_at` was written, so the cached copy does not ask for it again.
    func touched(hash: String, at date: Date) {
        entries.withLock { $0[hash]?.key.lastUsedAt = date }
    }
}
