import Foundation
import Logging
import NIOCore
import NIOPosix
import RedisClient
import TestSupport

/// The shared Redis the suites use, with a random key prefix per test.
extension TestRedis {
    static var url: String { TestServices.redisURL }
    static var logger: Logger { TestServices.logger("redis-tests") }

    /// A client on the shared server with its own prefix; deletes its keys when `body` ends.
    static func withClient(
        poolSize: Int? = nil, _ body: (RedisClient) async throws -> Void
    ) async throws {
        var configuration = try RedisConfiguration(url: url)
        configuration.keyPrefix = randomPrefix()
        configuration.connectTimeout = .seconds(3)
        if let poolSize { configuration.poolSize = poolSize }
        let client = RedisClient(configuration: configuration, logger: logger)
        do {
            try await body(client)
            await cleanUp(client)
        } catch {
            await cleanUp(client)
            throw error
        }
    }

    static func cleanUp(_ client: RedisClient) async {
        await discard(client)
    }
}

/// A redis-server of the test's own on a free port, for tests that stop and restart Redis.
final class OwnRedisServer: @unchecked Sendable {
    let port: Int
    let directory: String
    let extraArguments: [String]
    private var process: Process?

    init(extraArguments: [String] = []) async throws {
        self.port = try await Self.freePort()
        self.directory = NSTemporaryDirectory() + "sb-redis-test-\(UUID().uuidString)"
        self.extraArguments = extraArguments
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try await start()
    }

    var url: String { "redis://127.0.0.1:\(port)/0" }

    func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = [
            "--port", "\(port)", "--bind", "127.0.0.1", "--dir", directory, "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--logfile", directory + "/redis.log",
        ] + extraArguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        // Ready when a raw TCP connect succeeds (no AUTH needed for that).
        for _ in 0..<200 {
            if await Self.accepts(port: port) { return }
            try await Task.sleep(for: .milliseconds(25))
        }
        throw RedisError.unavailable("test redis-server on port \(port) did not start")
    }

    func stop() async {
        guard let process else { return }
        // SIGKILL: the test runner blocks SIGTERM and the child inherits that mask. A kill also
        // models the harshest outage (no goodbye on the sockets).
        kill(process.processIdentifier, SIGKILL)
        for _ in 0..<400 where process.isRunning { try? await Task.sleep(for: .milliseconds(10)) }
        self.process = nil
    }

    func destroy() async {
        await stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    static var binary: String {
        for path in ["/usr/bin/redis-server", "/usr/local/bin/redis-server"] where FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        return "redis-server"
    }

    static func freePort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port ?? 0
        try await channel.close()
        return port
    }

    static func accepts(port: Int) async -> Bool {
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.milliseconds(200))
                .connect(host: "127.0.0.1", port: port).get()
            try? await channel.close()
            return true
        } catch {
            return false
        }
    }
}

extension Array where Element == UInt8 {
    var text: String { String(decoding: self, as: UTF8.self) }
}
