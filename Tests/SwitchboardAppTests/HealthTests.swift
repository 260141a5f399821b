import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Queue
import RedisClient
import Storage
import SwitchboardConfig
import TestSupport
import Testing

@testable import APIServer
@testable import SwitchboardApp

struct HealthJSON: Decodable {
    struct Component: Decodable {
        let status: String
        let error: String?
    }
    let status: String
    let version: String
    let checks: [String: Component]
}

struct ErrorJSON: Decodable {
    struct Detail: Decodable {
        let code: String
        let message: String
        let status: Int
    }
    let error: Detail
}

extension TestServices {
    static func settings(_ env: [String: String] = [:]) throws -> Settings {
        var environment = ["SB_REDIS_URL": redisURL, "SB_DATABASE_URL": databaseURL]
        environment.merge(env) { $1 }
        return try Settings(source: ConfigSource(yaml: "", environment: environment, aliases: Settings.aliases))
    }
}

@Suite struct HealthTests {
    let logger = Logger(label: "test")

    /// The api router as `serve` builds it, with these health checks.
    static func router(redis: RedisClient, database: Database, checks: [HealthCheck]) -> Router<APIRequestContext> {
        APIApplication.buildRouter(dependencies: APIDependencies(
            redis: redis, stores: Stores(database: database), jobs: JobQueue(client: redis), healthChecks: checks
        ))
    }

    @Test func healthzReportsRedisAndDatabaseOK() async throws {
        let settings = try TestServices.settings()
        let redis = try Clients.redis(settings: settings, logger: logger)
        let database = try await Clients.database(settings: settings, logger: logger)
        let router = Self.router(redis: redis, database: database, checks: Launcher.healthChecks(redis: redis, database: database))
        let app = Application(router: router)
        try await app.test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
                let body = try JSONDecoder().decode(HealthJSON.self, from: Data(response.body.readableBytesView))
                #expect(body.status == "ok")
                #expect(body.checks["redis"]?.status == "ok")
                #expect(body.checks["database"]?.status == "ok")
            }
        }
        await redis.close()
        await database.shutdown()
    }

    @Test func healthzIs503WhenRedisIsDown() async throws {
        let port = try TestServices.freePort()
        let settings = try TestServices.settings(["SB_REDIS_URL": "redis://127.0.0.1:\(port)/0"])
        let redis = try Clients.redis(settings: settings, logger: logger)
        let database = try await Clients.database(settings: settings, logger: logger)
        let router = Self.router(redis: redis, database: database, checks: Launcher.healthChecks(redis: redis, database: database))
        try await Application(router: router).test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let body = try JSONDecoder().decode(HealthJSON.self, from: Data(response.body.readableBytesView))
                #expect(body.status == "unavailable")
                #expect(body.checks["redis"]?.status == "down")
                #expect(body.checks["redis"]?.error?.isEmpty == false)
                #expect(body.checks["database"]?.status == "ok")
            }
        }
        await redis.close()
        await database.shutdown()
    }

    @Test func aCheckThatHangsCountsAsDown() async throws {
        let (healthy, report) = await HealthEndpoint.run(
            [HealthCheck(name: "stuck") { try await Task.sleep(for: .seconds(60)) }],
            timeout: .milliseconds(100)
        )
        #expect(!healthy)
        #expect(report.checks["stuck"]?.status == "down")
    }

    @Test func unknownRoutesAnswerJSON404WithRequestID() async throws {
        let settings = try TestServices.settings()
        let redis = try Clients.redis(settings: settings, logger: logger)
        let database = try await Clients.database(settings: settings, logger: logger)
        defer { Task { await redis.close(); await database.shutdown() } }
        let app = Application(router: Self.router(redis: redis, database: database, checks: []))
        try await app.test(.router) { client in
            try await client.execute(uri: "/no/such/route", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
                #expect(response.headers[RequestIDMiddleware<APIRequestContext>.header]?.isEmpty == false)
                let body = try JSONDecoder().decode(ErrorJSON.self, from: Data(response.body.readableBytesView))
                #expect(body.error.code == "not_found")
                #expect(body.error.status == 404)
            }
        }
    }

    @Test func metricsArePrometheusText() async throws {
        let settings = try TestServices.settings()
        let redis = try Clients.redis(settings: settings, logger: logger)
        let database = try await Clients.database(settings: settings, logger: logger)
        defer { Task { await redis.close(); await database.shutdown() } }
        let app = Application(router: Self.router(redis: redis, database: database, checks: []))
        try await app.test(.router) { client in
            _ = try await client.execute(uri: "/healthz", method: .get)
        }
        // The internal listener's page counts the public router's requests.
        try await Application(router: APIApplication.buildInternalRouter(healthChecks: [])).test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true)
                let text = String(decoding: response.body.readableBytesView, as: UTF8.self)
                #expect(text.contains("hb_requests"))
            }
        }
    }
}
