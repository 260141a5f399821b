import Foundation
import Logging
import Queue
import RedisClient
import Storage
import SwitchboardCore
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
        var redisConfiguration = try RedisConfiguration(url: ProcessInfo.processInfo.environment["SB_TEST_REDIS_URL"] ?? "redis://127.0.0.1:6380/0")
        redisConfiguration.keyPrefix = "sbtest:\(UInt64.random(in: 0...UInt64.max)):"
        let redis = RedisClient(configuration: redisConfiguration, logger: logger)
        var configuration = try DatabaseConfiguration(
            url: ProcessInfo.processInfo.environment["SB_TEST_DATABASE_URL"] ?? "mariadb://switchboard:switchboard@127.0.0.1:3307/switchboard")
        configuration.poolSize = 1
        let admin = try await Database.connect(configuration, logger: logger)
        let name = "switchboard_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        try await admin.withSession { try await $0.executeText("CREATE DATABASE `\(name)` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci") }
        configuration.database = name
        configuration.poolSize = 4
        let result: Result<T, any Error>
        do {
            let database = try await Database.connect(configuration, logger: logger)
            do {
                _ = try await Migrator(database: database, logger: logger).migrate()
                result = .success(try await body(TestEnvironment(redis: redis, stores: Stores(database: database))))
            } catch {
                result = .failure(error)
            }
            await database.shutdown()
        } catch {
            result = .failure(error)
        }
        _ = try? await admin.withSession { try await $0.executeText("DROP DATABASE IF EXISTS `\(name)`") }
        await admin.shutdown()
        var cursor = "0"
        repeat {
            guard let reply = try? await redis.send(RedisCommand("SCAN", cursor, "MATCH", redis.configuration.keyPrefix + "*", "COUNT", 1000)),
                  let parts = reply.array, parts.count == 2, let next = parts[0].string
            else { break }
            let keys = (parts[1].array ?? []).compactMap(\.bytes)
            if !keys.isEmpty { _ = try? await redis.send(RedisCommand("DEL", arguments: keys)) }
            cursor = next
        } while cursor != "0"
        await redis.close()
        return try result.get()
    }

    /// A user, a chat and a queued message in it.
    func queuedMessage(_ content: String) async throws -> Message {
        let user = try await stores.users.createUser(email: "u\(UInt32.random(in: 0...UInt32.max))@example.com", name: "u", role: .user)
        return try await stores.messages.startChat(
            title: "t", externalThreadKey: nil, firstMessage: NewMessage(chatID: 0, ownerID: user.id, content: content)
        ).message
    }
}
