import Foundation
import RedisClient
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A redis-server of one test's own on a free loopback port, for tests that must not disturb
/// the shared Redis: they kill and restart it, flush its scripts, or set passwords. Its data
/// directory lives until `destroy()`, so a restart after `kill()` finds its AOF again.
public final class PrivateRedisServer: @unchecked Sendable {
    public let port: Int
    public let directory: String
    private let extraArguments: [String]
    private let lock = NSLock()
    private var process: Process?

    public var url: String { "redis://127.0.0.1:\(port)/0" }

    /// `extraArguments` go after the defaults (no snapshots, no AOF), so they may override them.
    public init(extraArguments: [String] = [], start: Bool = true) async throws {
        port = try TestServices.freePort()
        directory = NSTemporaryDirectory() + "sb-test-redis-\(UUID().uuidString)"
        self.extraArguments = extraArguments
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if start { try await self.start() }
    }

    public func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "redis-server", "--port", "\(port)", "--bind", "127.0.0.1", "--dir", directory, "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--logfile", directory + "/redis.log",
        ] + extraArguments
        // Never the test process's own output: a server outliving a crashed run would keep that
        // pipe open and its reader waiting.
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        lock.withLock { self.process = process }
        // Ready when a TCP connect succeeds (no AUTH needed for that).
        for _ in 0..<400 {
            if TestServices.accepts(port: port) { return }
            try await Task.sleep(for: .milliseconds(25))
        }
        throw RedisError.unavailable("test redis-server on port \(port) did not start")
    }

    /// SIGKILL, the harshest outage (no goodbye on the sockets, nothing flushed), and also the one
    /// signal that works: the test runner blocks SIGTERM and children inherit that mask.
    public func kill() async {
        guard let process = lock.withLock({ self.process.take() }) else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        for _ in 0..<1000 where process.isRunning { try? await Task.sleep(for: .milliseconds(10)) }
    }

    /// Kills the server and removes its data directory.
    public func destroy() async {
        await kill()
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit {
        if let process, process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
    }

}

/// Every port `freePort` handed out in this process.
private let portsHandedOut = Mutex<Set<Int>>([])

extension TestServices {
    /// A loopback port nobody listens on, and one this process has not handed out before: tests
    /// running in parallel start servers on ports from here, and the kernel may offer a port it
    /// offered a moment ago, before the first server bound it.
    public static func freePort() throws -> Int {
        for _ in 0..<100 {
            let port = try unusedPort()
            if portsHandedOut.withLock({ $0.insert(port).inserted }) { return port }
        }
        throw POSIXError(.EADDRINUSE)
    }

    /// A loopback port nobody listens on now: bind, read the port, close.
    private static func unusedPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw POSIXError(.EADDRINUSE) }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Whether something accepts TCP connections on the loopback `port`.
    public static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return address
    }
}
