import Foundation
import Storage
import TestSupport

/// A throw-away `switchboard_test_<random>` database (see TestSupport) with its stores.
enum TestDatabase {
    static var baseConfiguration: DatabaseConfiguration {
        get throws { try DatabaseConfiguration(url: TestServices.databaseURL) }
    }

    static func with<T>(
        poolSize: Int = 8, acquireTimeout: Duration = .seconds(10), migrate: Bool = true,
        _ body: (Database, Stores) async throws -> T
    ) async throws -> T {
        try await ThrowawayDatabase.with(poolSize: poolSize, acquireTimeout: acquireTimeout, migrate: migrate) { database, _ in
            try await body(database, Stores(database: database))
        }
    }
}
