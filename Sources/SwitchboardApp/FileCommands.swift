import Files
import Foundation
import Logging
import Observability
import Queue
import RedisClient
import Storage
import SwitchboardConfig
import SwitchboardCore

extension AdminCommands {
    /// `switchboard files reindex [--user EMAIL]`: queues an `index_file` job for every file whose
    /// text was extracted (of one user when given). Each job replaces the file's chunks with ones
    /// embedded by the model configured now, so after a change of embedding model the index is
    /// rebuilt file by file; searches only ever rank vectors of the configured model, so a file
    /// not re-indexed yet is missing from results, never compared across models. Returns the
    /// number of files queued.
    public static func reindexFiles(settings: Settings, userEmail: String?) async throws -> Int {
        LoggingSetup.bootstrap(level: .warning)
        let logger = Logger(label: "switchboard.cli")
        let database = try await Clients.database(settings: settings, logger: logger)
        let redis = try Clients.redis(settings: settings, logger: logger)
        do {
            try await Migrator(database: database, logger: logger).migrate()
            let stores = Stores(database: database)
            let queued = try await reindex(stores: stores, jobs: JobQueue(client: redis, logger: logger), userEmail: userEmail)
            await redis.close()
            await database.shutdown()
            return queued
        } catch {
            await redis.close()
            await database.shutdown()
            throw error
        }
    }

    /// The work of `reindexFiles` on given stores and queue (tests call it directly).
    public static func reindex(stores: Stores, jobs: any JobProducer, userEmail: String?) async throws -> Int {
        var ownerID: Int64?
        if let userEmail {
            guard let user = try await stores.users.user(email: userEmail) else {
                throw ConfigError(key: "user", "no user <\(userEmail)>")
            }
            ownerID = user.id
        }
        let files = try await stores.documents.extractedDocuments(ownerID: ownerID)
        for file in files {
            _ = try await stores.documents.setStatus(fileID: file.id, to: .indexing, error: nil, from: nil)
            try await jobs.enqueue(IndexJob(fileId: file.id), on: IndexJob.queue)
        }
        return files.count
    }
}
