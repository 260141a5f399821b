import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A mariadbd of one test's own on a free loopback port, for tests that need server options the
/// shared one does not have (TLS certificates, say). Grant checks are off (`skip-grant-tables`),
/// so any user connects to the `mysql` database; its data directory goes with `destroy()`.
public final class PrivateMariaDBServer: @unchecked Sendable {
    public let port: Int
    public let directory: String
    private let lock = NSLock()
    private var process: Process?

    public struct Failed: Error, CustomStringConvertible {
        public var description: String
    }

    /// `extraArguments` go to mariadbd after the defaults.
    public init(extraArguments: [String] = []) async throws {
        port = try TestServices.freePort()
        directory = NSTemporaryDirectory() + "sb-test-mariadb-\(UUID().uuidString)"
        do {
            try await Self.install(into: directory)
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "mariadbd", "--no-defaults", "--user=root", "--datadir=\(directory)/data", "--port=\(port)",
            "--bind-address=127.0.0.1", "--socket=\(directory)/mysqld.sock", "--pid-file=\(directory)/mariadb.pid",
            "--log-error=\(directory)/error.log", "--skip-name-resolve", "--skip-grant-tables",
            "--innodb-buffer-pool-size=16M", "--skip-log-bin",
        ] + extraArguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        lock.withLock { self.process = process }
        for _ in 0..<600 {
            if TestServices.accepts(port: port) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        let log = Self.tail(of: directory + "/error.log")
        await destroy()
        throw Failed(description: "test mariadbd on port \(port) did not start; its log ends:\n\(log)")
    }

    /// Creates the system tables in `directory/data`. Under a full test run the bootstrap has been
    /// seen to exit 1 once in many runs, so it gets three tries on a fresh data directory, and a
    /// failure carries the end of its output.
    private static func install(into directory: String) async throws {
        var log = ""
        for attempt in 1...3 {
            try? FileManager.default.removeItem(atPath: directory + "/data")
            try FileManager.default.createDirectory(atPath: directory + "/data", withIntermediateDirectories: true)
            let logPath = directory + "/install-\(attempt).log"
            guard FileManager.default.createFile(atPath: logPath, contents: nil) else {
                throw Failed(description: "cannot create \(logPath)")
            }
            let output = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
            let install = Process()
            install.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            install.arguments = [
                "mariadb-install-db", "--no-defaults", "--datadir=\(directory)/data", "--user=root",
                "--auth-root-authentication-method=normal", "--skip-test-db",
            ]
            install.standardInput = FileHandle.nullDevice
            install.standardOutput = output
            install.standardError = output
            try install.run()
            await install.waitForExit()
            try? output.close()
            if install.terminationStatus == 0 { return }
            log = "attempt \(attempt) exited with \(install.terminationStatus):\n" + tail(of: logPath)
        }
        throw Failed(description: "mariadb-install-db failed three times; the last output ends:\n\(log)")
    }

    private static func tail(of path: String) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { return "(no log)" }
        return String(decoding: data.suffix(2_000), as: UTF8.self)
    }

    /// Kills the server and removes its data directory.
    public func destroy() async {
        if let process = lock.withLock({ self.process.take() }) {
            Glibc.kill(process.processIdentifier, SIGKILL)
            for _ in 0..<1000 where process.isRunning { try? await Task.sleep(for: .milliseconds(10)) }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit {
        if let process, process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
    }
}
