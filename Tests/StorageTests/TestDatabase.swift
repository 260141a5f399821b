import Foundation
import Storage

/// A throw-away `switchboard_test_<random>` database on the server at SB_TEST_DATABASE_URL, dropped at the end.
enum TestDatabase {
    static var url: String {
        ProcessInfo.processInfo.environment["SB_TEST_DATABASE_URL"]
            ?? "mariadb://switchboard:switchboard@127.0.0.1:3307/switchboard"
    }

    static var baseConfiguration: DatabaseConfiguration {
        get throws { try DatabaseConfiguration(url: url) }
    }

    static func with<T>(
        poolSize: Int = 8, migrate: Bool = true, _ body: (Database, Stores) async throws -> T
    ) async throws -> T {
        var configuration = try baseConfiguration
        configuration.poolSize = 1
        let admin = try await Database.connect(configuration)
        let name = "switchboard_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        do {
            try await admin.withSession { try await $0.executeText("CREATE DATABASE `\(name)` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci") }
        } catch {
            await admin.shutdown()
            throw error
        }
        configuration.database = name
        configuration.poolSize = poolSize
        let result: Result<T, any Error>
        do {
            let database = try await Database.connect(configuration)
            do {
                if migrate { try await Migrator(database: database).migrate() }
                result = .success(try await body(database, Stores(database: database)))
            } catch {
                result = .failure(error)
            }
            await database.shutdown()
        } catch {
            result = .failure(error)
        }
        var dropError: (any Error)?
        do {
            try await admin.withSession { try await $0.executeText("DROP DATABASE IF EXISTS `\(name)`") }
        } catch {
            dropError = error
        }
        await admin.shutdown()
        if let dropError { throw dropError }
        return try result.get()
    }
}
