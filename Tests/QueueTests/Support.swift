import Foundation
import Logging
import Queue
import QueueTestJobs
import RedisClient
import TestSupport
import Testing

/// A test's own corner of the shared Redis: a random key prefix, removed afterwards.
struct TestEnvironment {
    let url: String
    let prefix: String
    let client: RedisClient
    var queue: JobQueue { JobQueue(client: client) }
    var failed: FailedJobs { FailedJobs(client: client) }

    static var sharedRedisURL: String { TestServices.redisURL }

    init(url: String = TestEnvironment.sharedRedisURL) throws {
        self.url = url
        self.prefix = "sbtest:queue:\(UInt64.random(in: 0...UInt64.max)):"
        var configuration = try RedisConfiguration(url: url)
        configuration.keyPrefix = prefix
        var logger = Logger(label: "queue-tests")
        logger.logLevel = .warning
        self.client = RedisClient(configuration: configuration, logger: logger)
    }

    /// Runs `body` with a fresh environment and deletes its keys afterwards, even when it throws.
    static func with(url: String = TestEnvironment.sharedRedisURL, _ body: (TestEnvironment) async throws -> Void) async throws {
        let environment = try TestEnvironment(url: url)
        do {
            try await body(environment)
        } catch {
            await environment.cleanUp()
            throw error
        }
        await environment.cleanUp()
    }

    func cleanUp() async {
        await TestRedis.deleteKeys(on: client, prefix: prefix)
        await client.close()
    }

    // MARK: reading state

    func int(_ key: String) async throws -> Int {
        try await client.get(key).flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0
    }

    func setSize(_ key: String) async throws -> Int {
        Int(try await client.send(RedisCommand("SCARD", client.key(key))).int ?? 0)
    }

    func list(_ key: String) async throws -> [String] {
        try await client.lrange(key, 0, -1).map { String(decoding: $0, as: UTF8.self) }
    }

    func depth(_ queue: QueueName) async throws -> Int { try await client.xlen("queue:\(queue.rawValue)") }

    func pending(_ queue: QueueName) async throws -> Int {
        try await client.xpendingSummary("queue:\(queue.rawValue)", group: "workers").count
    }

    /// Polls `condition` until it holds; fails the test with `message` after `timeout`.
    func eventually(
        _ message: String, timeout: Duration = .seconds(20), sourceLocation: SourceLocation = #_sourceLocation,
        _ condition: () async throws -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        var lastError: (any Error)?
        while ContinuousClock.now < deadline {
            // An error (Redis restarting, still loading its AOF) only means "not yet".
            do {
                if try await condition() { return }
                lastError = nil
            } catch {
                lastError = error
            }
            try await Task.sleep(for: .milliseconds(25))
        }
        Issue.record("timed out waiting: \(message)\(lastError.map { " (last error: \($0))" } ?? "")", sourceLocation: sourceLocation)
        throw TimedOut(message: message)
    }

    // MARK: worker processes

    func spawnWorker(_ arguments: [String] = [], redisURL: String? = nil) throws -> WorkerProcess {
        try WorkerProcess(arguments: ["queue", "worker", "--redis", redisURL ?? url, "--prefix", prefix] + arguments)
    }

    /// Waits until `count` worker processes of this environment have reported in.
    func waitForWorkers(_ count: Int) async throws {
        try await eventually("\(count) worker process(es) ready") { try await int("diag:ready") >= count }
    }

    /// An in-process worker with the diagnostic jobs, for tests that need no process boundary.
    func startWorker(_ configuration: WorkerConfiguration) throws -> (WorkerService, Task<Void, any Error>) {
        var registry = JobRegistry()
        DiagnosticJobs.register(in: &registry, client: client)
        var logger = Logger(label: "queue-tests.worker")
        logger.logLevel = .warning
        let worker = try WorkerService(client: client, registry: registry, configuration: configuration, logger: logger)
        return (worker, Task { try await worker.run() })
    }
}

struct TimedOut: Error { let message: String }

/// The package root, found from this file's path (Tests/QueueTests/Support.swift).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A `switchboard-bench queue worker` child process.
final class WorkerProcess: @unchecked Sendable {
    let process = Process()
    let logURL: URL

    init(arguments: [String]) throws {
        let binary = packageRoot.appendingPathComponent(".build/debug/switchboard-bench")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw TimedOut(message: "\(binary.path) is missing; `swift build --product switchboard-bench` first")
        }
        logURL = FileManager.default.temporaryDirectory.appendingPathComponent("sb-queue-worker-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let log = try FileHandle(forWritingTo: logURL)
        process.executableURL = binary
        process.arguments = arguments + ["--log-level", "info"]
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: logURL)
    }

    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits for the process to exit and returns its status (nil if it did not exit in time; it is killed then).
    func waitForExit(timeout: Duration = .seconds(30)) async throws -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now >= deadline {
                signal(SIGKILL)
                return nil
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }

    /// SIGTERM, then the exit status.
    func terminate() async throws -> Int32? {
        signal(SIGTERM)
        return try await waitForExit()
    }

    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }
}

