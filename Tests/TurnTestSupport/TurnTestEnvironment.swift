/// What the tests of turns share: real Redis and MariaDB per test (`TurnTestEnvironment`) and a
/// deterministic responder (`EchoResponder`). Never linked into a product.
import Foundation
import Logging
import Queue
import RedisClient
import Storage
import SwitchboardCore
import TestSupport
import Turns

/// Real Redis and MariaDB for a test: a random key prefix and a migrated throw-away database.
public struct TurnTestEnvironment: Sendable {
    public let redis: RedisClient
    public let stores: Stores

    public static var logger: Logger {
        var logger = Logger(label: "turn-tests")
        logger.logLevel = .warning
        return logger
    }

    public static func with<T>(_ body: (TurnTestEnvironment) async throws -> T) async throws -> T {
        let redis = try TestRedis.client(logger: logger)
        let result: Result<T, any Error>
        do {
            result = .success(try await ThrowawayDatabase.with(poolSize: 4, logger: logger) { database, _ in
                try await body(TurnTestEnvironment(redis: redis, stores: Stores(database: database)))
            })
        } catch {
            result = .failure(error)
        }
        await TestRedis.discard(redis)
        return try result.get()
    }

    /// A user, a chat and a queued message in it, from `channel`.
    public func queuedMessage(_ content: String, channel: Channel = .web) async throws -> Message {
        let user = try await stores.users.createUser(email: "u\(UInt32.random(in: 0...UInt32.max))@example.com", name: "u", role: .user)
        return try await stores.messages.startChat(
            title: "t", externalThreadKey: nil, firstMessage: NewMessage(chatID: 0, ownerID: user.id, content: content, channel: channel)
        ).message
    }

    /// The message ids of the turn jobs waiting on the `ai` queue, in order.
    public func queuedTurnIDs() async throws -> [Int64] { try await Self.queuedTurnIDs(redis) }

    /// The message ids of the turn jobs waiting on `redis`'s `ai` queue, in order.
    public static func queuedTurnIDs(_ redis: RedisClient) async throws -> [Int64] {
        try await redis.xrange("queue:\(Turns.queue.rawValue)").map { entry in
            try JSONDecoder().decode(TurnJob.self, from: Data(entry.fields["data"] ?? [])).messageId
        }.sorted()
    }
}
