import Foundation
import Logging

/// One schema change. Versions are applied in ascending order and never edited once released.
public struct Migration: Sendable {
    public let version: Int
    public let name: String
    /// Run one by one through the text protocol. MariaDB commits DDL implicitly, so each statement is
    /// written to be re-runnable (IF NOT EXISTS) in case a migration stopped half-way.
    public let statements: [String]

    public init(version: Int, name: String, statements: [String]) {
        self.version = version
        self.name = name
        self.statements = statements
    }
}

/// Brings a database to the latest schema version.
///
/// Several processes may start at once: the whole run holds `GET_LOCK` on a name derived from the
/// database, so one applies the missing migrations and the others then find nothing to do.
public struct Migrator: Sendable {
    public struct Report: Sendable, Equatable {
        /// Versions applied by this run, in order.
        public var applied: [Int]
        /// The schema version after the run.
        public var version: Int
    }

    public let database: Database
    public let migrations: [Migration]
    public var lockTimeoutSeconds: Int = 120
    private let logger: Logger

    public init(database: Database, migrations: [Migration] = Schema.migrations, logger: Logger = Logger(label: "switchboard.migrate")) {
        self.database = database
        self.migrations = migrations.sorted { $0.version < $1.version }
        self.logger = logger
    }

    /// GET_LOCK names are limited to 64 characters.
    var lockName: String { String("switchboard.migrate.\(database.configuration.database)".prefix(64)) }

    @discardableResult
    public func migrate() async throws -> Report {
        let versions = migrations.map(\.version)
        guard Set(versions).count == versions.count else {
            throw DatabaseError(code: .migration, message: "migration versions are not unique: \(versions)")
        }
        return try await database.withSession { session in
            let locked = try await session.queryFirst("SELECT GET_LOCK(?, ?) AS locked", [.string(lockName), .int(lockTimeoutSeconds)])
            guard try locked?.optionalInt("locked") == 1 else {
                throw DatabaseError(code: .migration, message: "could not take the migration lock `\(lockName)` within \(lockTimeoutSeconds) s")
            }
            do {
                let report = try await apply(on: session)
                try await session.execute("DO RELEASE_LOCK(?)", [.string(lockName)])
                return report
            } catch {
                _ = try? await session.execute("DO RELEASE_LOCK(?)", [.string(lockName)])
                throw error
            }
        }
    }

    /// The highest applied version, nil on an empty database.
    public func currentVersion() async throws -> Int? {
        try await database.withSession { session in
            try await createHistoryTable(session)
            return try await appliedVersions(session).max()
        }
    }

    private func apply(on session: DatabaseSession) async throws -> Report {
        try await createHistoryTable(session)
        let done = try await appliedVersions(session)
        var applied: [Int] = []
        for migration in migrations where !done.contains(migration.version) {
            logger.info("applying migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
            for statement in migration.statements {
                do {
                    try await session.executeText(statement)
                } catch {
                    throw DatabaseError(
                        code: .migration,
                        message: "migration \(migration.version) (\(migration.name)) failed: \(error)\nstatement: \(statement)")
                }
            }
            try await session.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                [.int(migration.version), .string(migration.name), .date(.databaseNow())])
            applied.append(migration.version)
        }
        return Report(applied: applied, version: (done.union(applied)).max() ?? 0)
    }

    private func createHistoryTable(_ session: DatabaseSession) async throws {
        try await session.executeText(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version INT UNSIGNED NOT NULL PRIMARY KEY,
                name VARCHAR(200) NOT NULL,
                applied_at DATETIME(6) NOT NULL
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
            """)
    }

    private func appliedVersions(_ session: DatabaseSession) async throws -> Set<Int> {
        Set(try await session.query("SELECT version FROM schema_migrations").map { Int(try $0.int("version")) })
    }
}
