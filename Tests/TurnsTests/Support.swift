import Foundation
import Logging
import Queue
import RedisClient
import Storage
import SwitchboardCore
import TestSupport
import Turns

/// Real Redis and MariaDB for a test: a random key prefix and a migrated throw-away database.
struct TestEnvironment: Sendable {
    let redis: RedisClient
    let stores: Stores

    static var logger: Logger {
        var logger = Logger(label: "turns-tests")
        logger.logLevel = .warning
        return logger
    }

    static func with<T>(_ body: (TestEnvironment) async throws -> T) async throws -> T {
        let redis = try TestRedis.client(logger: logger)
        let result: Result<T, any Error>
        do {
            result = .success(try await ThrowawayDatabase.with(poolSize: 4, logger: logger) { database, _ in
                try await body(TestEnvironment(redis: redis, stores: Stores(database: database)))
            })
        } catch {
            result = .failure(error)
        }
        await TestRedis.discard(redis)
        return try result.get()
    }

    /// A user, a chat and a queued message in it, from `channel`.
    func queuedMessage(_ content: String, channel: Channel = .web) async throws -> Message {
        let user = try await stores.users.createUser(email: "u\(UInt32.random(in: 0...UInt32.max))@example.com", name: "u", role: .user)
        return try await stores.messages.startChat(
            title: "t", externalThreadKey: nil, firstMessage: NewMessage(chatID: 0, ownerID: user.id, content: content, channel: channel)
        ).message
    }
}
