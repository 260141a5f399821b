/// The assembly of roles: settings → clients → services → one `ServiceGroup` that runs until
/// SIGTERM/SIGINT and drains on the way out. Admin commands are in `AdminCommands`.
import APIServer
import Channels
import Foundation
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
import SwitchboardConfig
import SwitchboardCore

/// A role this process plays. `serve` plays all of them.
public enum Role: String, Sendable, CaseIterable {
    case api, worker, gateway
}

/// Connects what the roles share and runs them as one `ServiceGroup` until SIGTERM/SIGINT.
public enum Launcher {
    public static func run(roles: Set<Role>, settings: Settings) async throws {
        LoggingSetup.bootstrap(
            level: Logger.Level(rawValue: settings.logLevel.rawValue) ?? .info,
            metadataProvider: settings.tracing.enabled ? TracingSetup.logMetadataProvider : nil)
        MetricsSetup.bootstrap()
        var logger = Logger(label: "switchboard")
        let roleNames = Role.allCases.filter(roles.contains).map(\.rawValue).joined(separator: ",")
        logger[metadataKey: "roles"] = .string(roleNames)
        // Before the api's router is built: it adds its span middleware only when a tracer is installed.
        let tracing = try TracingAssembly.bootstrap(settings: settings, roles: roleNames, logger: logger)

        // Servers started alongside (compose, a reboot) may not answer yet: wait for them a while.
        let redis = try Clients.redis(settings: settings, logger: logger)
        let needsDatabase = roles.contains(.api) || roles.contains(.worker)
        let database: Database?
        do {
            try await StartupWait.redis(redis, settings: settings, logger: logger)
            database = needsDatabase ? try await StartupWait.database(settings: settings, logger: logger) : nil
        } catch {
            await redis.close()
            throw error
        }
        do {
            if let database, settings.database.migrateOnStart {
                let report = try await Migrator(database: database, logger: logger).migrate()
                if !report.applied.isEmpty { logger.info("applied migrations", metadata: ["versions": "\(report.applied)"]) }
            }
            try await runServices(roles: roles, settings: settings, redis: redis, database: database, tracing: tracing, logger: logger)
        } catch {
            await redis.close()
            await database?.shutdown()
            throw error
        }
        await redis.close()
        await database?.shutdown()
    }

    static func runServices(
        roles: Set<Role>, settings: Settings, redis: RedisClient, database: Database?, tracing: (any Service)? = nil, logger: Logger
    ) async throws {
        // The trace exporter first: the group stops services in reverse order, so it stops last
        // and flushes the spans of the work the others drained.
        var services: [any Service] = tracing.map { [$0] } ?? []
        let stores = database.map { Stores(database: $0) }
        // One gateway configuration for the process: a gateway run here and the api's tokens share its secret.
        let gatewayConfiguration = try GatewayAssembly.configuration(settings: settings, logger: logger)
        let realtime = RealtimeAssembly.publisher(settings: settings, gateway: gatewayConfiguration, redis: redis, logger: logger)
        // One secret box for the process, so a missing key is reported once.
        let secrets = Clients.secrets(settings: settings, logger: logger)
        // One index cache per process, shared by the search route and `rag_query`.
        let files = try stores.map { try FilesRuntime(settings: settings, stores: $0, logger: logger) }
        if let files {
            do {
                try await files.start(redis: redis)
            } catch {
                // The subscription is retried in the background; until then the TTL bounds staleness.
                logger.warning("index-change subscription not ready yet", metadata: ["error": "\(error)"])
            }
        }
        if roles.contains(.api), let stores {
            let checks = healthChecks(redis: redis, database: database)
            var dependencies = APIDependencies(
                redis: redis, stores: stores, jobs: JobQueue(client: redis, logger: logger),
                settings: APISettings(
                    maxBodyBytes: settings.http.maxBodySize, allowPrivateCallbacks: settings.allowPrivateCallbacks,
                    quotas: Clients.quotas(settings), email: Clients.email(settings)),
                limits: Clients.rateLimits(settings.limits), healthChecks: checks,
                secrets: secrets,
                liveSupport: RealtimeAssembly.liveSupport(
                    settings: settings, gateway: gatewayConfiguration, gatewayInProcess: roles.contains(.gateway), publisher: realtime, logger: logger)
            )
            if let files { dependencies.files = files.services }
            dependencies.web = Clients.web(settings.web)
            services.append(APIApplication.build(host: settings.http.host, port: settings.http.port, dependencies: dependencies, logger: logger))
            services.append(APIApplication.buildInternal(
                host: settings.http.internalHost, port: settings.http.internalPort, healthChecks: checks, logger: logger))
        }
        var pipeline: PipelineRuntime?
        if roles.contains(.worker), let stores {
            let runtime = try PipelineRuntime(environment: settings.aiEnvironment, stores: stores, redis: redis, logger: logger, files: files)
            try await runtime.pipeline.start()
            pipeline = runtime
            var registry = JobRegistry()
            let channels = ChannelRegistry.configured(
                stores: stores, secrets: secrets, whatsAppGraphURL: settings.whatsAppGraphURL,
                allowPrivateCallbacks: settings.allowPrivateCallbacks, realtime: realtime, email: Clients.email(settings))
            runtime.register(in: &registry, stores: stores, redis: redis, deliveries: channels.deliveries)
            WhatsAppAssembly.registerMedia(in: &registry, settings: settings, stores: stores, redis: redis, secrets: secrets, logger: logger)
            services.append(contentsOf: try WorkerAssembly.make(settings: settings, redis: redis, registry: registry, logger: logger))
            services.append(WorkerAssembly.queuedTurnSweeper(stores: stores, redis: redis, logger: logger))
            services.append(EmailAssembly.imapPoller(
                settings: settings, stores: stores, redis: redis, secrets: secrets, logger: logger))
        }
        if roles.contains(.gateway) {
            services.append(GatewayServer(configuration: gatewayConfiguration, redis: redis, logger: logger))
        }

        logger.info("starting", metadata: ["version": "\(SwitchboardVersion.current)", "environment": "\(settings.environment.rawValue)"])
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        do {
            try await group.run()
        } catch {
            await pipeline?.shutdown()
            await files?.shutdown()
            throw error
        }
        await pipeline?.shutdown()
        await files?.shutdown()
        logger.info("stopped")
    }

    /// What the api's `/healthz` checks: Redis answers PING, MariaDB answers a query.
    static func healthChecks(redis: RedisClient, database: Database?) -> [HealthCheck] {
        var checks = [HealthCheck(name: "redis") { try await redis.ping() }]
        if let database { checks.append(HealthCheck(name: "database") { _ = try await database.query("SELECT 1", []) }) }
        return checks
    }
}
