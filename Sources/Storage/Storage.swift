/// Storage: everything Switchboard keeps in MariaDB, over MariaDB Connector/C.
///
/// The module owns the connection pool and its dedicated thread pool (`Database`), prepared
/// statements with typed binds (`DatabaseValue`, `Row`), typed errors (`DatabaseError`), URL
/// configuration (`DatabaseConfiguration`), the versioned schema (`Schema`, `Migrator`), the float32
/// vector encoding (`VectorCoding`), and the stores the API and workers call (`UserStore`,
/// `ChatStore`, `MessageStore`, ... with their MariaDB implementations, bundled in `Stores`).
/// docs/storage.md describes the tables, indexes, pool and threading.
public enum StorageModule {
    /// Connects, applies missing migrations, and returns the database with its stores.
    public static func open(
        _ configuration: DatabaseConfiguration, migrate: Bool = true
    ) async throws -> (database: Database, stores: Stores) {
        let database = try await Database.connect(configuration)
        if migrate {
            do {
                try await Migrator(database: database).migrate()
            } catch {
                await database.shutdown()
                throw error
            }
        }
        return (database, Stores(database: database))
    }
}
