import APIServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Queue
import RedisClient
import Storage
import SwitchboardCore
import Testing
import Turns

/// Real Redis and MariaDB for a test: a random Redis key prefix and a migrated
/// `switchboard_test_<random>` database, both removed when the test ends.
struct TestEnvironment: Sendable {
    let redis: RedisClient
    let database: Database
    let stores: Stores
    let jobs: JobQueue

    static var redisURL: String { ProcessInfo.processInfo.environment["SB_TEST_REDIS_URL"] ?? "redis://127.0.0.1:6380/0" }
    static var databaseURL: String {
        ProcessInfo.processInfo.environment["SB_TEST_DATABASE_URL"] ?? "mariadb://switchboard:switchboard@127.0.0.1:3307/switchboard"
    }

    static var logger: Logger {
        var logger = Logger(label: "api-tests")
        logger.logLevel = .warning
        return logger
    }

    static func with<T>(_ body: (TestEnvironment) async throws -> T) async throws -> T {
        var redisConfiguration = try RedisConfiguration(url: redisURL)
        redisConfiguration.keyPrefix = "sbtest:\(UInt64.random(in: 0...UInt64.max)):"
        let redis = RedisClient(configuration: redisConfiguration, logger: logger)

        var configuration = try DatabaseConfiguration(url: databaseURL)
        configuration.poolSize = 1
        let admin = try await Database.connect(configuration, logger: logger)
        let name = "switchboard_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        try await admin.withSession { try await $0.executeText("CREATE DATABASE `\(name)` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci") }
        configuration.database = name
        configuration.poolSize = 8
        let result: Result<T, any Error>
        do {
            let database = try await Database.connect(configuration, logger: logger)
            do {
                _ = try await Migrator(database: database, logger: logger).migrate()
                let environment = TestEnvironment(
                    redis: redis, database: database, stores: Stores(database: database), jobs: JobQueue(client: redis, logger: logger))
                result = .success(try await body(environment))
            } catch {
                result = .failure(error)
            }
            await database.shutdown()
        } catch {
            result = .failure(error)
        }
        _ = try? await admin.withSession { try await $0.executeText("DROP DATABASE IF EXISTS `\(name)`") }
        await admin.shutdown()
        await cleanUp(redis)
        return try result.get()
    }

    static func cleanUp(_ client: RedisClient) async {
        var cursor = "0"
        repeat {
            guard
                let reply = try? await client.send(
                    RedisCommand("SCAN", cursor, "MATCH", client.configuration.keyPrefix + "*", "COUNT", 1000)),
                let parts = reply.array, parts.count == 2, let next = parts[0].string
            else { break }
            let keys = (parts[1].array ?? []).compactMap(\.bytes)
            if !keys.isEmpty { _ = try? await client.send(RedisCommand("DEL", arguments: keys)) }
            cursor = next
        } while cursor != "0"
        await client.close()
    }

    func dependencies(
        settings: APISettings = APISettings(), limits: RateLimitSettings = .disabled, jobs: (any JobProducer)? = nil
    ) -> APIDependencies {
        APIDependencies(redis: redis, stores: stores, jobs: jobs ?? self.jobs, settings: settings, limits: limits)
    }

    /// A user with one API key; answers the user and the secret.
    func makeUser(_ email: String = "u\(UInt32.random(in: 0...UInt32.max))@example.com") async throws -> (user: User, key: String) {
        let accounts = Accounts(stores: stores)
        let user = try await accounts.createUser(email: email)
        let key = try await accounts.createAPIKey(userEmail: email)
        return (user, key.secret)
    }

    func application(
        settings: APISettings = APISettings(), limits: RateLimitSettings = .disabled, jobs: (any JobProducer)? = nil
    ) -> some ApplicationProtocol {
        Application(router: APIApplication.buildRouter(dependencies: dependencies(settings: settings, limits: limits, jobs: jobs)), logger: Self.logger)
    }

    /// A worker running turn and delivery jobs with `responder` for the duration of `body`.
    func withWorker<T>(responder: any TurnResponder = EchoResponder(), _ body: () async throws -> T) async throws -> T {
        var registry = JobRegistry()
        Turns.register(in: &registry, dependencies: TurnDependencies(redis: redis, stores: stores, responder: responder))
        let configuration = WorkerConfiguration(
            workerID: "test-worker-\(UInt32.random(in: 0...UInt32.max))", queues: [Turns.queue, Turns.deliveryQueue], concurrency: 4,
            healthPort: 0, blockTime: .milliseconds(200))
        let worker = try WorkerService(client: redis, registry: registry, configuration: configuration, logger: Self.logger)
        let task = Task { try await worker.run() }
        do {
            let result = try await body()
            worker.beginStopping()
            task.cancel()
            _ = await task.result
            return result
        } catch {
            worker.beginStopping()
            task.cancel()
            _ = await task.result
            throw error
        }
    }
}

extension HTTPFields {
    static func auth(_ key: String, json: Bool = true) -> HTTPFields {
        var fields: HTTPFields = [.authorization: "Bearer \(key)"]
        if json { fields[.contentType] = "application/json" }
        return fields
    }
}

extension TestResponse {
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
    }
    var text: String { String(buffer: body) }
    var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
    var errorMessage: String? { (json["error"] as? [String: Any])?["message"] as? String }
}

func jsonBody(_ object: [String: Any]) -> ByteBuffer {
    ByteBuffer(bytes: try! JSONSerialization.data(withJSONObject: object))
}

/// An api application listening on a free port for the duration of `body` (several can run at
/// once against the same Redis and database, like api nodes behind one address).
enum LiveServer {
    static func with<T>(_ dependencies: APIDependencies, _ body: (Int) async throws -> T) async throws -> T {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = APIApplication.build(host: "127.0.0.1", port: 0, dependencies: dependencies, logger: TestEnvironment.logger) { channel in
            continuation.yield(channel.localAddress?.port ?? 0)
        }
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            task.cancel()
            throw CancellationError()
        }
        do {
            let result = try await body(port)
            task.cancel()
            _ = await task.result
            return result
        } catch {
            task.cancel()
            _ = await task.result
            throw error
        }
    }
}
