/// TestSupport owns what the test targets share about the real services they run against (the
/// Redis and MariaDB of `scripts/services`): where they are, a throw-away database per test, a
/// Redis corner per test (a random key prefix, deleted afterwards), a private redis-server for
/// the tests that must not disturb the shared one, and the model server of `scripts/llm`. Never
/// linked into a product.
import Foundation
import Logging
import RedisClient
import Storage
import Synchronization

/// Where the shared test servers are (`SB_TEST_REDIS_URL`, `SB_TEST_DATABASE_URL`, and their Unix
/// sockets `SB_TEST_REDIS_SOCKET`, `SB_TEST_MARIADB_SOCKET`).
public enum TestServices {
    public static var redisURL: String { ProcessInfo.processInfo.environment["SB_TEST_REDIS_URL"] ?? "redis://127.0.0.1:6380/0" }
    public static var databaseURL: String {
        ProcessInfo.processInfo.environment["SB_TEST_DATABASE_URL"] ?? "mariadb://switchboard:switchboard@127.0.0.1:3307/switchboard"
    }
    public static var redisSocket: String {
        ProcessInfo.processInfo.environment["SB_TEST_REDIS_SOCKET"] ?? "/tmp/switchboard-redis-6380.sock"
    }
    public static var mariadbSocket: String {
        ProcessInfo.processInfo.environment["SB_TEST_MARIADB_SOCKET"] ?? "/tmp/switchboard-mariadb-3307.sock"
    }

    /// Warnings and worse only: test output stays readable.
    public static func logger(_ label: String) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = .warning
        return logger
    }
}

/// A `switchboard_test_<random>` database on the server at `TestServices.databaseURL`, migrated
/// (unless asked not to), handed to `body`, and dropped afterwards however `body` ends.
/// `acquireTimeout`: how long a caller waits for one of the `poolSize` connections.
///
/// At most `setUpsAtOnce` databases are created and migrated at a time in one test process: with
/// every suite starting together, a hundred and more migrations at once (CREATE and ALTER TABLE)
/// queued inside MariaDB for minutes on a busy machine, and every test waiting on the database
/// with them (a 120 s migration lock and 10 s pool waits ran out). Queued here they finish sooner.
public enum ThrowawayDatabase {
    static let setUpsAtOnce = 8
    static let setUps = TestGate(width: setUpsAtOnce)

    public static func with<T>(
        poolSize: Int = 8, acquireTimeout: Duration = .seconds(10), migrate: Bool = true,
        logger: Logger = TestServices.logger("test.database"),
        _ body: (_ database: Database, _ name: String) async throws -> T
    ) async throws -> T {
        var configuration = try DatabaseConfiguration(url: TestServices.databaseURL)
        configuration.poolSize = 1
        let admin = try await Database.connect(configuration, logger: logger)
        let name = "switchboard_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        configuration.database = name
        configuration.poolSize = poolSize
        configuration.acquireTimeout = acquireTimeout
        let result: Result<T, any Error>
        do {
            let database = try await setUps.holding { [configuration] in
                try await admin.withSession { try await $0.executeText("CREATE DATABASE `\(name)` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci") }
                let database = try await Database.connect(configuration, logger: logger)
                guard migrate else { return database }
                do {
                    _ = try await Migrator(database: database, logger: logger).migrate()
                } catch {
                    await database.shutdown()
                    throw error
                }
                return database
            }
            do {
                result = .success(try await body(database, name))
            } catch {
                result = .failure(error)
            }
            await database.shutdown()
        } catch {
            result = .failure(error)
        }
        var dropError: (any Error)?
        do {
            try await admin.withSession { try await $0.executeText("DROP DATABASE IF EXISTS `\(name)`") }
        } catch {
            dropError = error
        }
        await admin.shutdown()
        let value = try result.get()
        if let dropError { throw dropError }
        return value
    }
}

/// A test's own corner of the shared Redis: a random key prefix on every key and channel.
public enum TestRedis {
    public static func randomPrefix(_ scope: String = "") -> String {
        "sbtest:\(scope.isEmpty ? "" : scope + ":")\(UInt64.random(in: 0...UInt64.max)):"
    }

    /// A client whose keys carry a fresh random prefix.
    public static func client(
        url: String = TestServices.redisURL, prefix: String = randomPrefix(), logger: Logger = TestServices.logger("test.redis"),
        configure: (inout RedisConfiguration) -> Void = { _ in }
    ) throws -> RedisClient {
        var configuration = try RedisConfiguration(url: url)
        configuration.keyPrefix = prefix
        configure(&configuration)
        return RedisClient(configuration: configuration, logger: logger)
    }

    /// Deletes every key under `prefix` (the client's own prefix when nil); the client stays open.
    public static func deleteKeys(on client: RedisClient, prefix: String? = nil) async {
        let pattern = (prefix ?? client.configuration.keyPrefix) + "*"
        var cursor = "0"
        repeat {
            guard let reply = try? await client.send(RedisCommand("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)),
                  let parts = reply.array, parts.count == 2, let next = parts[0].string
            else { break }
            let keys = (parts[1].array ?? []).compactMap(\.bytes)
            if !keys.isEmpty { _ = try? await client.send(RedisCommand("DEL", arguments: keys)) }
            cursor = next
        } while cursor != "0"
    }
}

extension TestRedis {
    /// Deletes the client's keys and closes it (the end of a test's Redis corner).
    public static func discard(_ client: RedisClient) async {
        await deleteKeys(on: client)
        await client.close()
    }
}

extension Process {
    /// Waits until the process has ended without blocking a thread. Foundation's `waitUntilExit`
    /// spins the calling thread's run loop, and on a thread of the cooperative pool it can starve
    /// the dispatch thread that would report the exit (the test process then never ends).
    public func waitForExit() async {
        let resumed = Mutex(false)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resume: @Sendable () -> Void = {
                if resumed.withLock({ done in defer { done = true }; return !done }) { continuation.resume() }
            }
            terminationHandler = { _ in resume() }
            if !isRunning { resume() }
        }
    }
}

extension FileHandle {
    /// Everything until the writer closes it, read on a thread of its own: a blocking read on the
    /// cooperative pool (two threads on a two-core machine) would stall every other test meanwhile.
    public func readToEndOffPool() async -> Data {
        await withCheckedContinuation { (continuation: CheckedContinuation<Data, Never>) in
            let handle = UncheckedSendableBox(self)
            Thread { continuation.resume(returning: handle.value.readDataToEndOfFile()) }.start()
        }
    }
}

/// Carries a value that is only touched by one thread at a time across a `@Sendable` boundary.
struct UncheckedSendableBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// Polls `condition` every 100 ms until it holds or `timeout` passes; answers whether it held.
/// A wait in a test is bounded by its own timeout, never by what an earlier wait left over.
public func eventually(within timeout: Duration, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(100))
    }
    return try await condition()
}

/// At most `width` holders at a time; the others wait in arrival order.
public actor TestGate {
    private let width: Int
    private var holders = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    public init(width: Int) { self.width = width }

    public func enter() async {
        if holders < width {
            holders += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    /// Hands the place to the next waiter, if any.
    public func leave() {
        if waiting.isEmpty {
            holders -= 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}

extension TestGate {
    /// Runs `body` holding a place, which is given back however `body` ends.
    public nonisolated func holding<T>(_ body: () async throws -> T) async rethrows -> T {
        await enter()
        do {
            let value = try await body()
            await leave()
            return value
        } catch {
            await leave()
            throw error
        }
    }
}
