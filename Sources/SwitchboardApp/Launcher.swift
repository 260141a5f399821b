import Foundation
import APIServer
import Gateway
import Hummingbird
import Logging
import Observability
import Pipeline
import Queue
import RedisClient
import ServiceLifecycle
import UnixSignals
import Storage
import Turns
import SwitchboardConfig
import SwitchboardCore

/// A role this process plays. `serve` plays all of them.
public enum Role: String, Sendable, CaseIterable {
    case api, worker, gateway
}

/// Connects what the roles share and runs them as one `ServiceGroup` until SIGTERM/SIGINT.
public enum Launcher {
    public static func run(roles: Set<Role>, settings: Settings) async throws {
        LoggingSetup.bootstrap(level: Logger.Level(rawValue: settings.logLevel.rawValue) ?? .info)
        MetricsSetup.bootstrap()
        var logger = Logger(label: "switchboard")
        logger[metadataKey: "roles"] = .string(Role.allCases.filter(roles.contains).map(\.rawValue).joined(separator: ","))

        let redis = try makeRedis(settings: settings, logger: logger)
        let needsDatabase = roles.contains(.api) || roles.contains(.worker)
        let database = needsDatabase ? try await makeDatabase(settings: settings, logger: logger) : nil
        do {
            if let database, settings.database.migrateOnStart {
                let report = try await Migrator(database: database, logger: logger).migrate()
                if !report.applied.isEmpty { logger.info("applied migrations", metadata: ["versions": "\(report.applied)"]) }
            }
            try await runServices(roles: roles, settings: settings, redis: redis, database: database, logger: logger)
        } catch {
            await redis.close()
            await database?.shutdown()
            throw error
        }
        await redis.close()
        await database?.shutdown()
    }

    static func runServices(roles: Set<Role>, settings: Settings, redis: RedisClient, database: Database?, logger: Logger) async throws {

        var services: [any Service] = []
        let stores = database.map { Stores(database: $0) }
        if roles.contains(.api), let stores {
            var checks = [HealthCheck(name: "redis") { try await redis.ping() }]
            if let database { checks.append(HealthCheck(name: "database") { _ = try await database.query("SELECT 1", []) }) }
            let dependencies = APIDependencies(
                redis: redis, stores: stores, jobs: JobQueue(client: redis, logger: logger),
                settings: APISettings(maxBodyBytes: settings.http.maxBodySize),
                limits: rateLimits(settings.limits), healthChecks: checks
            )
            services.append(APIApplication.build(host: settings.http.host, port: settings.http.port, dependencies: dependencies, logger: logger))
        }
        var pipeline: PipelineRuntime?
        if roles.contains(.worker), let stores {
            let runtime = try PipelineRuntime(environment: settings.aiEnvironment, stores: stores, redis: redis, logger: logger)
            try await runtime.pipeline.start()
            pipeline = runtime
            var registry = JobRegistry()
            runtime.register(in: &registry, stores: stores, redis: redis)
            services.append(contentsOf: try WorkerAssembly.make(settings: settings, redis: redis, registry: registry, logger: logger))
            services.append(WorkerAssembly.queuedTurnSweeper(stores: stores, redis: redis, logger: logger))
        }
        if roles.contains(.gateway) {
            let configuration = try gatewayConfiguration(settings: settings, logger: logger)
            services.append(GatewayServer(configuration: configuration, redis: redis, logger: logger))
        }

        logger.info("starting", metadata: ["version": "\(SwitchboardVersion.current)", "environment": "\(settings.environment.rawValue)"])
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        do {
            try await group.run()
        } catch {
            await pipeline?.shutdown()
            throw error
        }
        await pipeline?.shutdown()
        logger.info("stopped")
    }

    /// Applies pending migrations; returns the versions applied.
    public static func migrate(settings: Settings) async throws -> [Int] {
        LoggingSetup.bootstrap(level: Logger.Level(rawValue: settings.logLevel.rawValue) ?? .info)
        let logger = Logger(label: "switchboard.migrate")
        let database = try await makeDatabase(settings: settings, logger: logger)
        do {
            let report = try await Migrator(database: database, logger: logger).migrate()
            await database.shutdown()
            return report.applied
        } catch {
            await database.shutdown()
            throw error
        }
    }

    public static func mintToken(settings: Settings, user: String, channel: String?, ttl: Int?) throws -> String {
        let configuration = try gatewayConfiguration(settings: settings, logger: Logger(label: "switchboard.token"))
        guard let secret = configuration.tokenSecret, !secret.isEmpty else {
            throw ConfigError(key: "gateway.token_secret", "no token secret configured (set SB_GATEWAY_TOKEN_SECRET)")
        }
        return GatewayTokens.mint(secret: secret, user: user, channel: channel, ttl: ttl)
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
        LoggingSetup.bootstrap(level: .warning)
        let logger = Logger(label: "switchboard.cli")
        let database = try await makeDatabase(settings: settings, logger: logger)
        let redis = try makeRedis(settings: settings, logger: logger)
        do {
            try await Migrator(database: database, logger: logger).migrate()
            let result = try await body(Accounts(stores: Stores(database: database), redis: redis))
            await redis.close()
            await database.shutdown()
            return result
        } catch {
            await redis.close()
            await database.shutdown()
            throw error
        }
    }

    // MARK: shared pieces

    static func rateLimits(_ limits: Settings.Limits) -> RateLimitSettings {
        func rule(_ perMinute: Int, _ burst: Int) -> RateLimitRule? {
            perMinute > 0 ? RateLimitRule(limit: perMinute, period: .seconds(60), burst: burst) : nil
        }
        return RateLimitSettings(
            perUser: rule(limits.perUserPerMinute, limits.perUserBurst),
            perIP: rule(limits.perIPPerMinute, limits.perIPBurst),
            trustForwardedFor: limits.trustForwardedFor
        )
    }

    static func makeRedis(settings: Settings, logger: Logger) throws -> RedisClient {
        var configuration: RedisConfiguration
        do {
            configuration = try RedisConfiguration(url: settings.redis.url)
        } catch {
            throw ConfigError(key: "redis.url", "\(error)")
        }
        if let prefix = settings.redis.keyPrefix { configuration.keyPrefix = prefix }
        configuration.poolSize = settings.redis.poolSize
        return RedisClient(configuration: configuration, logger: logger)
    }

    static func makeDatabase(settings: Settings, logger: Logger) async throws -> Database {
        var configuration: DatabaseConfiguration
        do {
            configuration = try DatabaseConfiguration(url: settings.database.url)
        } catch {
            throw ConfigError(key: "database.url", "\(error)")
        }
        configuration.poolSize = settings.database.poolSize
        return try await Database.connect(configuration, logger: logger)
    }

    private static func withRedis<T: Sendable>(_ settings: Settings, _ body: (RedisClient) async throws -> T) async throws -> T {
        LoggingSetup.bootstrap(level: .warning)
        let redis = try makeRedis(settings: settings, logger: Logger(label: "switchboard.cli"))
        do {
            let result = try await body(redis)
            await redis.close()
            return result
        } catch {
            await redis.close()
            throw error
        }
    }

    /// The `gateway` section decoded by the gateway's own type, then the environment overrides.
    /// Development without a secret gets a random one per process (tokens from `switchboard token`
    /// then need SB_GATEWAY_TOKEN_SECRET); production has already refused to start without one.
    static func gatewayConfiguration(settings: Settings, logger: Logger) throws -> GatewayConfiguration {
        var configuration: GatewayConfiguration
        do {
            if let section = settings.gatewaySection {
                configuration = try JSONDecoder().decode(GatewayConfiguration.self, from: section.jsonData())
            } else {
                configuration = try JSONDecoder().decode(GatewayConfiguration.self, from: Data("{}".utf8))
            }
        } catch {
            throw ConfigError(key: "gateway", "invalid gateway section: \(error)")
        }
        configuration.port = settings.gatewayPort
        if let host = settings.gatewayHost { configuration.host = host }
        if let secret = settings.gatewayTokenSecret { configuration.tokenSecret = secret }
        if let previous = ProcessInfo.processInfo.environment["SB_GATEWAY_PREVIOUS_TOKEN_SECRET"], !previous.isEmpty {
            configuration.previousTokenSecret = previous
        }
        if let key = settings.gatewayAPIKey { configuration.apiKey = key }
        if let origins = settings.gatewayAllowedOrigins { configuration.allowedOrigins = origins }
        if configuration.tokenSecret?.isEmpty ?? true {
            configuration.tokenSecret = randomSecret()
            logger.warning("gateway.token_secret is not set: using a random secret for this process only (development)")
        }
        if configuration.apiKey?.isEmpty ?? true {
            configuration.apiKey = randomSecret()
            logger.warning("gateway.api_key is not set: the gateway HTTP API uses a random key for this process only (development)")
        }
        return configuration
    }

    static func randomSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}
