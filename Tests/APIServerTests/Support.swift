import APIServer
import Channels
import Files
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Pipeline
import Queue
import RedisClient
import Storage
import SwitchboardCore
import TestSupport
import Testing
import TurnTestSupport
import Turns

/// Real Redis and MariaDB for a test: a random Redis key prefix and a migrated
/// `switchboard_test_<random>` database, both removed when the test ends.
struct TestEnvironment: Sendable {
    let redis: RedisClient
    let database: Database
    let stores: Stores
    let jobs: JobQueue

    static var logger: Logger {
        var logger = Logger(label: "api-tests")
        logger.logLevel = .warning
        return logger
    }

    static func with<T>(_ body: (TestEnvironment) async throws -> T) async throws -> T {
        let redis = try TestRedis.client(logger: logger)
        let result: Result<T, any Error>
        do {
            result = .success(try await ThrowawayDatabase.with(logger: logger) { database, _ in
                try await body(TestEnvironment(
                    redis: redis, database: database, stores: Stores(database: database), jobs: JobQueue(client: redis, logger: logger)))
            })
        } catch {
            result = .failure(error)
        }
        await TestRedis.discard(redis)
        return try result.get()
    }

    func dependencies(
        settings: APISettings = APISettings(), limits: RateLimitSettings = .disabled, jobs: (any JobProducer)? = nil,
        files: FilesConfiguration? = nil
    ) -> APIDependencies {
        var dependencies = APIDependencies(redis: redis, stores: stores, jobs: jobs ?? self.jobs, settings: settings, limits: limits)
        if let files { dependencies.files = FileServices(configuration: files) }
        return dependencies
    }

    /// A user with one API key; answers the user and the secret.
    func makeUser(_ email: String = "u\(UInt32.random(in: 0...UInt32.max))@example.com") async throws -> (user: User, key: String) {
        let accounts = Accounts(stores: stores)
        let user = try await accounts.createUser(email: email)
        let key = try await accounts.createAPIKey(userEmail: email)
        return (user, key.secret)
    }

    func application(
        settings: APISettings = APISettings(), limits: RateLimitSettings = .disabled, jobs: (any JobProducer)? = nil,
        files: FilesConfiguration? = nil
    ) -> some ApplicationProtocol {
        Application(
            router: APIApplication.buildRouter(dependencies: dependencies(settings: settings, limits: limits, jobs: jobs, files: files)),
            logger: Self.logger)
    }

    /// A worker running turn and delivery jobs with `responder` for the duration of `body` (and
    /// the jobs `register` adds, on `queues`).
    func withWorker<T>(
        responder: any TurnResponder = EchoResponder(), deliveries: ChannelDeliveries = .standard,
        queues: [QueueName] = [Turns.queue, Deliveries.queue], register: (inout JobRegistry) -> Void = { _ in }, _ body: () async throws -> T
    ) async throws -> T {
        var registry = JobRegistry()
        PipelineJobs.register(in: &registry, responder: responder, stores: stores, redis: redis, deliveries: deliveries)
        register(&registry)
        let configuration = WorkerConfiguration(
            workerID: "test-worker-\(UInt32.random(in: 0...UInt32.max))", queues: queues, concurrency: 4,
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
