/// The admin commands of `switchboard` (migrate, token, jobs, users, keys): each connects what
/// it needs, does one thing, and closes its connections.
import APIServer
import Foundation
import Gateway
import Logging
import Observability
import Queue
import RedisClient
import Storage
import SwitchboardConfig
import SwitchboardCore

public enum AdminCommands {
    /// Applies pending migrations; returns the versions applied.
    public static func migrate(settings: Settings) async throws -> [Int] {
        LoggingSetup.bootstrap(level: Logger.Level(rawValue: settings.logLevel.rawValue) ?? .info)
        let logger = Logger(label: "switchboard.migrate")
        let database = try await Clients.database(settings: settings, logger: logger)
        do {
            let report = try await Migrator(database: database, logger: logger).migrate()
            await database.shutdown()
            return report.applied
        } catch {
            await database.shutdown()
            throw error
        }
    }

    /// A connection token (with `channels`, server-side subscriptions), or a subscription token for `channel`.
    public static func mintToken(settings: Settings, user: String, channel: String?, channels: [String] = [], ttl: Int) throws -> String {
        let configuration = try GatewayAssembly.configuration(settings: settings, logger: Logger(label: "switchboard.token"))
        guard let secret = configuration.tokenSecret, !secret.isEmpty else {
            throw ConfigError(key: "gateway.token_secret", "no token secret configured (set SB_GATEWAY_TOKEN_SECRET)")
        }
        return GatewayTokens.mint(secret: secret, user: user, channel: channel, ttl: ttl, channels: channels)
    }

    public static func failedJobs(settings: Settings, limit: Int) async throws -> [String] {
        try await withRedis(settings) { redis in
            let formatter = ISO8601DateFormatter()
            return try await FailedJobs(client: redis).list(limit: limit).map { job in
                "\(job.entryID)  job=\(job.jobID)  queue=\(job.queue)  name=\(job.name)  attempts=\(job.attempts)  failed_at=\(formatter.string(from: job.failedAt))  error=\(job.error)"
            }
        }
    }

    public static func retryFailedJobs(settings: Settings, id: String?) async throws -> Int {
        try await withRedis(settings) { redis in
            let failed = FailedJobs(client: redis)
            if let id { return try await failed.retry(id) ? 1 : 0 }
            return try await failed.retryAll()
        }
    }

    public static func purgeFailedJobs(settings: Settings) async throws -> Int {
        try await withRedis(settings) { redis in try await FailedJobs(client: redis).purge() }
    }

    public struct CreatedUser: Sendable {
        public let id: Int64
        public let email: String
    }

    public struct CreatedKey: Sendable {
        public let id: Int64
        public let secret: String
    }

    public static func createUser(settings: Settings, email: String, name: String?, role: String = "user") async throws -> CreatedUser {
        guard let role = User.Role(rawValue: role) else { throw ConfigError(key: "role", "unknown role '\(role)' (user, operator, admin)") }
        return try await withAccounts(settings) { accounts in
            let user = try await accounts.createUser(email: email, name: name, role: role)
            return CreatedUser(id: user.id, email: user.email)
        }
    }

    /// Sets `email`'s password for the web pages (bcrypt at `web.bcrypt_cost`) and ends the
    /// user's sign-in sessions.
    public static func setPassword(settings: Settings, email: String, password: String) async throws {
        try await withStores(settings) { stores, redis in
            try await Passwords(stores: stores, cost: UInt8(settings.web.bcryptCost), redis: redis).setPassword(email: email, password: password)
        }
    }

    /// Why `password` cannot be used (too short, too long for bcrypt), or nil.
    public static func passwordProblem(_ password: String) -> String? { Passwords.problem(password)?.description }

    /// Sets `email`'s own quotas; nil keeps the configured default, 0 means no limit.
    public static func setQuota(settings: Settings, email: String, messagesPerDay: Int?, tokensPerMonth: Int?) async throws {
        try await withAccounts(settings) { accounts in
            try await accounts.setQuota(email: email, limits: QuotaLimits(messagesPerDay: messagesPerDay, tokensPerMonth: tokensPerMonth))
        }
    }

    public static func createAPIKey(settings: Settings, userEmail: String, name: String) async throws -> CreatedKey {
        try await withAccounts(settings) { accounts in
            let created = try await accounts.createAPIKey(userEmail: userEmail, name: name)
            return CreatedKey(id: created.key.id, secret: created.secret)
        }
    }

    /// False when there is no active key `id`; `warning` when the api nodes could not be told.
    public static func revokeAPIKey(settings: Settings, id: Int64) async throws -> (revoked: Bool, warning: String?) {
        try await withAccounts(settings) { accounts in
            do {
                return (try await accounts.revokeAPIKey(id: id), nil)
            } catch let unannounced as Accounts.RevocationNotAnnounced {
                return (true, unannounced.description)
            }
        }
    }

    /// Account commands run against a migrated database, so they work on a fresh install too;
    /// key changes are announced through Redis to the api nodes' key caches.
    private static func withAccounts<T: Sendable>(_ settings: Settings, _ body: (Accounts) async throws -> T) async throws -> T {
        try await withStores(settings) { stores, redis in try await body(Accounts(stores: stores, redis: redis)) }
    }

    private static func withStores<T: Sendable>(_ settings: Settings, _ body: (Stores, RedisClient) async throws -> T) async throws -> T {
        LoggingSetup.bootstrap(level: .warning)
        let logger = Logger(label: "switchboard.cli")
        let database = try await Clients.database(settings: settings, logger: logger)
        let redis = try Clients.redis(settings: settings, logger: logger)
        do {
            try await Migrator(database: database, logger: logger).migrate()
            let result = try await body(Stores(database: database), redis)
            await redis.close()
            await database.shutdown()
            return result
        } catch {
            await redis.close()
            await database.shutdown()
            throw error
        }
    }

    private static func withRedis<T: Sendable>(_ settings: Settings, _ body: (RedisClient) async throws -> T) async throws -> T {
        LoggingSetup.bootstrap(level: .warning)
        let redis = try Clients.redis(settings: settings, logger: Logger(label: "switchboard.cli"))
        do {
            let result = try await body(redis)
            await redis.close()
            return result
        } catch {
            await redis.close()
            throw error
        }
    }
}
