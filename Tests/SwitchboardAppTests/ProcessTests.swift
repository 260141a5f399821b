import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import APIServer
import RedisClient
import TestSupport
import Testing

/// Runs the real `switchboard` binary the way an operator does.
@Suite(.serialized) struct ProcessTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `switchboard` built with these tests: it sits next to the test bundle in the same build
    /// products folder (whatever the configuration, triple or scratch path), so a binary left from
    /// another build is never picked up.
    static var binary: URL {
        let products = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let beside = products.appendingPathComponent("switchboard")
        if FileManager.default.isExecutableFile(atPath: beside.path) { return beside }
        return packageRoot.appendingPathComponent(".build/debug/switchboard")
    }

    struct Finished {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// `executable`: another program to run with `arguments` (which then name the binary).
    static func launch(_ arguments: [String], environment: [String: String], executable: URL? = nil) throws -> (Process, Pipe, Pipe) {
        let process = Process()
        process.executableURL = executable ?? binary
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["SB_REDIS_URL"] = TestServices.redisURL
        env["SB_DATABASE_URL"] = TestServices.databaseURL
        env["SB_CONFIG"] = nil
        env.merge(environment) { $1 }
        process.environment = env
        process.currentDirectoryURL = FileManager.default.temporaryDirectory
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        return (process, out, err)
    }

    static func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> Finished {
        let (process, out, err) = try launch(arguments, environment: environment)
        async let stdout = out.fileHandleForReading.readToEndOffPool()
        async let stderr = err.fileHandleForReading.readToEndOffPool()
        let (stdoutData, stderrData) = await (stdout, stderr)
        await process.waitForExit()
        return Finished(status: process.terminationStatus, stdout: String(decoding: stdoutData, as: UTF8.self), stderr: String(decoding: stderrData, as: UTF8.self))
    }

    static func httpStatus(_ url: String) async -> Int? {
        var request = URLRequest(url: URL(string: url)!)
        request.timeoutInterval = 2
        guard let (_, response) = try? await URLSession.shared.data(for: request) else { return nil }
        return (response as? HTTPURLResponse)?.statusCode
    }

    /// The first status `url` answers with 200, or its last answer once `process` has exited or
    /// `limit` has passed. Start-up connects to and migrates the shared database, which in a full
    /// run is slow while about 200 test databases are created at once (up to a minute here).
    static func pollStatus(_ url: String, while process: Process, limit: Duration = .seconds(120)) async throws -> Int? {
        var status: Int?
        let deadline = ContinuousClock.now + limit
        while process.isRunning && ContinuousClock.now < deadline {
            status = await httpStatus(url)
            if status == 200 { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        return status
    }

    @Test func versionPrintsTheVersion() async throws {
        let finished = try await Self.run(["version"])
        #expect(finished.status == 0)
        #expect(finished.stdout.hasPrefix("switchboard "))
    }

    @Test func invalidConfigurationStopsStartUpNamingTheKey() async throws {
        let finished = try await Self.run(["serve"], environment: ["SB_HTTP_PORT": "not-a-port"])
        #expect(finished.status != 0)
        #expect(finished.stderr.contains("http.port"))
        #expect(finished.stderr.contains("SB_HTTP_PORT"))
    }

    @Test func productionRefusesPlaceholderSecrets() async throws {
        let finished = try await Self.run(["serve"], environment: ["SB_ENV": "production", "SB_GATEWAY_TOKEN_SECRET": "change-me"])
        #expect(finished.status != 0)
        #expect(finished.stderr.contains("gateway.token_secret"))
    }

    /// The claims of the token a `switchboard token` printed.
    static func claims(_ output: String) throws -> [String: Any] {
        let parts = output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".")
        #expect(parts.count == 3)
        var payload = String(parts[1]).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while payload.count % 4 != 0 { payload += "=" }
        let json = try #require(Data(base64Encoded: payload))
        return try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
    }

    @Test func tokenMintsATokenThatExpires() async throws {
        let minted = try await Self.run(["token", "--user", "42"], environment: ["SB_GATEWAY_TOKEN_SECRET": "cli-test-secret-0123456789"])
        #expect(minted.status == 0, "\(minted.stderr)")
        let claims = try Self.claims(minted.stdout)
        #expect(claims["sub"] as? String == "42")
        let expiry = try #require(claims["exp"] as? Int, "every minted token has exp")
        #expect(abs(expiry - Int(Date().timeIntervalSince1970) - 3600) < 120)
        #expect(try await Self.run(["token", "--user", "42", "--ttl", "0"]).status != 0)

        // Server-side channels, for a client of the unidirectional endpoint.
        let subscribed = try await Self.run(
            ["token", "--user", "7", "--subscribe", "news:a", "--subscribe", "news:b"], environment: ["SB_GATEWAY_TOKEN_SECRET": "cli-test-secret-0123456789"])
        #expect(subscribed.status == 0, "\(subscribed.stderr)")
        #expect(try Self.claims(subscribed.stdout)["channels"] as? [String] == ["news:a", "news:b"])
        #expect(try await Self.run(["token", "--user", "7", "--channel", "news:a", "--subscribe", "news:b"]).status != 0)
    }

    @Test func migrateSucceedsTwice() async throws {
        let first = try await Self.run(["migrate"])
        #expect(first.status == 0, "\(first.stderr)")
        let second = try await Self.run(["migrate"])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stdout.contains("up to date"))
    }

    @Test func keysRevokeTellsTheAPINodesThroughRedisOrWarnsThatItCouldNot() async throws {
        let prefix = "sbtest-keys-\(UUID().uuidString.prefix(8)):"
        let environment = ["SB_REDIS_KEY_PREFIX": prefix]
        let email = "cli-\(UUID().uuidString.prefix(8).lowercased())@example.com"
        #expect(try await Self.run(["users", "create", "--email", email], environment: environment).status == 0)
        func createKey() async throws -> Int64 {
            let created = try await Self.run(["keys", "create", "--user", email], environment: environment)
            #expect(created.stdout.hasPrefix("sk_"), "\(created.stderr)")
            let id = created.stderr.split(separator: " ").dropFirst(2).first.flatMap { Int64($0) }
            return try #require(id, "key id in: \(created.stderr)")
        }
        let redis = try TestRedis.client(prefix: prefix)
        let first = try await createKey()
        let revoked = try await Self.run(["keys", "revoke", "\(first)"], environment: environment)
        #expect(revoked.status == 0, "\(revoked.stderr)")
        #expect(revoked.stdout.contains("revoked key \(first)"))
        #expect(!revoked.stderr.contains("warning"))
        #expect(try await redis.get(APIKeyCache.generationKey) != nil, "the revocation is announced")
        let again = try await Self.run(["keys", "revoke", "\(first)"], environment: environment)
        #expect(again.status != 0)
        #expect(again.stderr.contains("no active key with id \(first)"))

        // Redis down: the key is revoked all the same, and the operator learns that nodes may still accept it for a while.
        let second = try await createKey()
        let unannounced = try await Self.run(
            ["keys", "revoke", "\(second)"], environment: environment.merging(["SB_REDIS_URL": "redis://127.0.0.1:1/0?connect_timeout=0.3"]) { $1 })
        #expect(unannounced.status == 0, "\(unannounced.stderr)")
        #expect(unannounced.stdout.contains("revoked key \(second)"))
        #expect(unannounced.stderr.contains("warning: the key is revoked, but the api nodes could not be told"))
        #expect(try await Self.run(["keys", "revoke", "\(second)"], environment: environment).status != 0)
        await TestRedis.discard(redis)
    }

    /// The ports of one `serve` process.
    struct ServePorts {
        let http = try! TestServices.freePort()
        let gateway = try! TestServices.freePort()
        let worker = try! TestServices.freePort()
        let httpInternal = try! TestServices.freePort()
        let gatewayInternal = try! TestServices.freePort()

        var environment: [String: String] {
            [
                "SB_HTTP_PORT": "\(http)", "SB_GATEWAY_PORT": "\(gateway)", "SB_WORKER_HEALTH_PORT": "\(worker)",
                "SB_HTTP_INTERNAL_PORT": "\(httpInternal)", "SB_GATEWAY_INTERNAL_PORT": "\(gatewayInternal)",
                "SB_REDIS_KEY_PREFIX": "sbtest-serve-\(UUID().uuidString.prefix(8)):",
            ]
        }

        /// What answers 200 once every role is up (the api's and the gateway's internal `/healthz` ask Redis).
        var healthURLs: [String] {
            [
                "http://127.0.0.1:\(http)/healthz", "http://127.0.0.1:\(gateway)/healthz", "http://127.0.0.1:\(worker)/health",
                "http://127.0.0.1:\(httpInternal)/metrics", "http://127.0.0.1:\(gatewayInternal)/metrics",
                "http://127.0.0.1:\(gatewayInternal)/healthz",
            ]
        }
    }

    /// Polls each URL until the roles, which start concurrently, are up.
    static func expectHealthy(_ urls: [String], while process: Process) async throws {
        for url in urls {
            let status = try await pollStatus(url, while: process)
            #expect(status == 200, "\(url) answered \(status.map(String.init) ?? "nothing") within 120 s of start-up")
        }
    }

    /// SIGTERM, then the process must exit 0 within 30 s.
    static func expectCleanStop(_ process: Process, stderr err: Pipe) async {
        process.terminate()
        let deadline = Date().addingTimeInterval(30)
        while process.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(100)) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            Issue.record("serve did not stop within 30 s of SIGTERM")
        }
        await process.waitForExit()
        let stderr = String(decoding: await err.fileHandleForReading.readToEndOffPool(), as: UTF8.self)
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 0, "stderr: \(stderr.suffix(2000))")
    }

    @Test func serveAnswersHealthzAndExitsZeroOnSIGTERM() async throws {
        let ports = ServePorts()
        let (process, _, err) = try Self.launch(["serve"], environment: ports.environment)
        try await Self.expectHealthy(ports.healthURLs, while: process)
        // Metrics and the gateway's server API are not on the public ports.
        #expect(await Self.httpStatus("http://127.0.0.1:\(ports.http)/metrics") == 404)
        #expect(await Self.httpStatus("http://127.0.0.1:\(ports.gateway)/metrics") == 404)
        #expect(try await Curl.request("POST", "http://127.0.0.1:\(ports.gateway)/api/info", body: "{}").status == 404)
        // The api's internal listener and the worker's health listener answer errors as JSON too.
        for port in [ports.httpInternal, ports.worker] {
            let missing = try await Curl.request("GET", "http://127.0.0.1:\(port)/nope")
            #expect(missing.status == 404 && missing.body.contains(#""code":"not_found""#), "port \(port): \(missing.body)")
            let garbage = await Self.exchange(port: port, "GARBAGE / HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(garbage.hasPrefix("HTTP/1.1 400 ") && garbage.lowercased().contains("content-type: application/json"), "port \(port): \(garbage)")
        }
        await Self.expectCleanStop(process, stderr: err)
    }

    /// The container image runs as `nobody`. A socket option that needs privileges (SO_DEBUG, once
    /// set by mistake for TCP_NODELAY) made every Redis connection and every gateway connection
    /// fail there while working as root; so `serve` runs here as `nobody` too: every role comes up
    /// with Redis and MariaDB, and the gateway upgrades a WebSocket.
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"), "needs root to drop to nobody"))
    func serveRunsAsAnUnprivilegedUser() async throws {
        // A copy nobody may execute, whatever the permissions of the folders above the build.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sbtest-nobody-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(at: folder) }
        let copy = folder.appendingPathComponent("switchboard")
        try FileManager.default.copyItem(at: Self.binary, to: copy)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: copy.path)

        let ports = ServePorts()
        var environment = ports.environment
        environment["SB_FILES_STORAGE_DIR"] = folder.appendingPathComponent("files").path
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("files"), withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
        let (process, _, err) = try Self.launch(
            ["--reuid=nobody", "--regid=nogroup", "--clear-groups", copy.path, "serve"], environment: environment,
            executable: URL(fileURLWithPath: "/usr/bin/setpriv"))
        try await Self.expectHealthy(ports.healthURLs, while: process)
        let answer = await Self.exchange(
            port: ports.gateway,
            "GET /connection/websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        #expect(answer.hasPrefix("HTTP/1.1 101 "), "the upgrade was answered \(answer)")
        await Self.expectCleanStop(process, stderr: err)
    }

    /// Sends `request` on a new loopback connection and returns what arrives within 5 s up to the
    /// end of the response head (blocking I/O, off the cooperative pool).
    static func exchange(port: Int, _ request: String) async -> String {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                defer { Glibc.close(socket) }
                var timeout = timeval(tv_sec: 5, tv_usec: 0)
                setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = in_port_t(UInt16(port).bigEndian)
                address.sin_addr.s_addr = inet_addr("127.0.0.1")
                let connected = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                guard connected == 0 else { return continuation.resume(returning: "connect failed: errno \(errno)") }
                _ = Array(request.utf8).withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                var received: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 4096)
                while !String(decoding: received, as: UTF8.self).contains("\r\n\r\n") {
                    let count = chunk.withUnsafeMutableBytes { Glibc.recv(socket, $0.baseAddress, $0.count, 0) }
                    if count <= 0 { break }
                    received += chunk[..<count]
                }
                continuation.resume(returning: received.isEmpty ? "nothing (errno \(errno))" : String(decoding: received, as: UTF8.self))
            }
        }
    }
}
