// A migrated throw-away database for a benchmark run (`switchboard_test_bench_*` on the server of
// `url`), dropped afterwards however the run ends.
import Logging
import Storage

enum BenchDatabase {
    static func with(
        url: String, poolSize: Int, label: String, logger: Logger, _ body: (Stores) async throws -> Void
    ) async throws {
        var adminConfiguration = try DatabaseConfiguration(url: url)
        adminConfiguration.poolSize = 1
        let admin = try await Database.connect(adminConfiguration, logger: logger)
        let name = "switchboard_test_bench_\(label)\(UInt32.random(in: 0...UInt32.max))"
        try await admin.withSession { try await $0.executeText("CREATE DATABASE `\(name)` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci") }
        var configuration = adminConfiguration
        configuration.database = name
        configuration.poolSize = poolSize
        let outcome: Result<Void, any Error>
        do {
            let database = try await Database.connect(configuration, logger: logger)
            do {
                try await Migrator(database: database, logger: logger).migrate()
                try await body(Stores(database: database))
                outcome = .success(())
            } catch {
                outcome = .failure(error)
            }
            await database.shutdown()
        } catch {
            outcome = .failure(error)
        }
        _ = try? await admin.withSession { try await $0.executeText("DROP DATABASE IF EXISTS `\(name)`") }
        await admin.shutdown()
        try outcome.get()
    }
}
