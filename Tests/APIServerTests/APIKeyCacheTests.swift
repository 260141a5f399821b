import APIServer
import Foundation
import RedisClient
import Storage
import Synchronization
import SwitchboardCore
import Testing

/// The real key store, counting how often it is asked for a key.
private final class CountingKeys: APIKeyStore {
    let base: any APIKeyStore
    let lookups = Atomic<Int>(0)

    init(_ base: any APIKeyStore) { self.base = base }

    func activeAPIKey(hash: String) async throws -> (key: APIKey, user: User)? {
        lookups.add(1, ordering: .relaxed)
        return try await base.activeAPIKey(hash: hash)
    }

    func createAPIKey(userID: Int64, name: String, prefix: String, keyHash: String) async throws -> APIKey {
        try await base.createAPIKey(userID: userID, name: name, prefix: prefix, keyHash: keyHash)
    }
    func apiKey(id: Int64, ownerID: Int64) async throws -> APIKey? { try await base.apiKey(id: id, ownerID: ownerID) }
    func apiKeys(ownerID: Int64) async throws -> [APIKey] { try await base.apiKeys(ownerID: ownerID) }
    func touchAPIKey(id: Int64, at date: Date) async throws { try await base.touchAPIKey(id: id, at: date) }
    func revokeAPIKey(id: Int64, ownerID: Int64?) async throws -> Bool { try await base.revokeAPIKey(id: id, ownerID: ownerID) }
    func deleteAPIKey(id: Int64, ownerID: Int64) async throws -> Bool { try await base.deleteAPIKey(id: id, ownerID: ownerID) }
}

@Suite("API key cache")
struct APIKeyCacheTests {
    @Test func aKeyIsLoadedOnceUntilAKeyChangeIsAnnounced() async throws {
        try await TestEnvironment.with { env in
            let (user, secret) = try await env.makeUser()
            let hash = APIKeySecret.hash(secret)
            let keys = CountingKeys(env.stores.apiKeys)
            let cache = APIKeyCache(store: keys, redis: env.redis)

            for _ in 0..<3 { #expect(try await cache.activeAPIKey(hash: hash)?.user.id == user.id) }
            #expect(keys.lookups.load(ordering: .relaxed) == 1)

            // Another key's change is announced too: everything cached is read again, once.
            try await APIKeyCache.announceChange(redis: env.redis)
            for _ in 0..<2 { #expect(try await cache.activeAPIKey(hash: hash)?.user.id == user.id) }
            #expect(keys.lookups.load(ordering: .relaxed) == 2)

            // A key that does not exist is asked for every time (a new key works at once).
            let unknown = APIKeySecret.hash(APIKeySecret.generate())
            #expect(try await cache.activeAPIKey(hash: unknown) == nil)
            #expect(try await cache.activeAPIKey(hash: unknown) == nil)
            #expect(keys.lookups.load(ordering: .relaxed) == 4)
        }
    }

    @Test func aRedisThatLostTheCounterDoesNotRevalidateOldEntries() async throws {
        try await TestEnvironment.with { env in
            let (_, secret) = try await env.makeUser()
            let hash = APIKeySecret.hash(secret)
            let keys = CountingKeys(env.stores.apiKeys)
            let cache = APIKeyCache(store: keys, redis: env.redis)
            _ = try await cache.activeAPIKey(hash: hash)
            let first = try #require(try await env.redis.get(APIKeyCache.generationKey))
            // Redis restarted without its data: the counter starts again somewhere else. (The
            // cache goes on with the value it read for a moment, as it does after any read.)
            #expect(try await env.redis.del(APIKeyCache.generationKey) == 1)
            try await Task.sleep(for: APIKeyCache.generationReuse)
            _ = try await cache.activeAPIKey(hash: hash)
            #expect(keys.lookups.load(ordering: .relaxed) == 2)
            #expect(try await env.redis.get(APIKeyCache.generationKey) != first)
        }
    }

    @Test func withoutRedisEveryRequestAsksTheDatabase() async throws {
        try await TestEnvironment.with { env in
            let (user, secret) = try await env.makeUser()
            let keys = CountingKeys(env.stores.apiKeys)
            // Nothing listens on port 1.
            let configuration = try RedisConfiguration(url: "redis://127.0.0.1:1/0?connect_timeout=0.2")
            let unreachable = RedisClient(configuration: configuration, logger: TestEnvironment.logger)
            let cache = APIKeyCache(store: keys, redis: unreachable)
            for _ in 0..<2 { #expect(try await cache.activeAPIKey(hash: APIKeySecret.hash(secret))?.user.id == user.id) }
            #expect(keys.lookups.load(ordering: .relaxed) == 2)
            await unreachable.close()
        }
    }

    @Test func aRevocationThatCouldNotBeAnnouncedSaysSo() async throws {
        try await TestEnvironment.with { env in
            let (user, _) = try await env.makeUser()
            let id = try #require(try await env.stores.apiKeys.apiKeys(ownerID: user.id).first?.id)
            await #expect(throws: Accounts.RevocationNotAnnounced.self) { try await Accounts(stores: env.stores).revokeAPIKey(id: id) }
            #expect(try await env.stores.apiKeys.apiKeys(ownerID: user.id).first?.isRevoked == true)
            #expect(try await Accounts(stores: env.stores, redis: env.redis).revokeAPIKey(id: id) == false)
        }
    }
}
