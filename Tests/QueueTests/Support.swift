import Foundation
import Logging
import Queue
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

/// A private redis-server (AOF, fsync on every write) on a free port, for tests that restart Redis.
final class PrivateRedis: @unchecked Sendable {
    let port: Int
    let directory: URL
    private var process: Process?

    var url: String { "redis://127.0.0.1:\(port)/0" }

    init() throws {
        port = try Self.freePort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sb-queue-redis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "redis-server", "--port", "\(port)", "--bind", "127.0.0.1", "--dir", directory.path, "--appendonly", "yes",
            "--appendfsync", "always", "--save", "", "--logfile", directory.appendingPathComponent("redis.log").path,
        ]
        // Never the test process's own output: a server outliving a crashed test run would keep
        // that pipe open and its reader waiting.
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process = process
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if Self.accepts(port: port) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TimedOut(message: "redis-server on \(port) did not start")
    }

    /// SIGKILL: nothing gets a chance to flush; the AOF (fsync always) must hold everything acknowledged.
    func kill() async throws {
        guard let process else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        while process.isRunning { try await Task.sleep(for: .milliseconds(10)) }
        self.process = nil
    }

    func stop() async {
        try? await kill()
        try? FileManager.default.removeItem(at: directory)
    }

    deinit {
        if let process, process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw TimedOut(message: "no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
