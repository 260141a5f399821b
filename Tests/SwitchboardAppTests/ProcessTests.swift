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

    static func launch(_ arguments: [String], environment: [String: String]) throws -> (Process, Pipe, Pipe) {
        let process = Process()
        process.executableURL = binary
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

    @Test func tokenMintsATokenThatExpires() async throws {
        let minted = try await Self.run(["token", "--user", "42"], environment: ["SB_GATEWAY_TOKEN_SECRET": "cli-test-secret-0123456789"])
        #expect(minted.status == 0, "\(minted.stderr)")
        let parts = minted.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".")
        #expect(parts.count == 3)
        var payload = String(parts[1]).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while payload.count % 4 != 0 { payload += "=" }
        let json = try #require(Data(base64Encoded: payload))
        let claims = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        #expect(claims["sub"] as? String == "42")
        let expiry = try #require(claims["exp"] as? Int, "every minted token has exp")
        #expect(abs(expiry - Int(Date().timeIntervalSince1970) - 3600) < 120)
        #expect(try await Self.run(["token", "--user", "42", "--ttl", "0"]).status != 0)
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

    @Test func serveAnswersHealthzAndExitsZeroOnSIGTERM() async throws {
        let httpPort = try TestServices.freePort()
        let gatewayPort = try TestServices.freePort()
        let workerPort = try TestServices.freePort()
        let httpInternalPort = try TestServices.freePort()
        let gatewayInternalPort = try TestServices.freePort()
        let (process, _, err) = try Self.launch(
            ["serve"],
            environment: [
                "SB_HTTP_PORT": "\(httpPort)", "SB_GATEWAY_PORT": "\(gatewayPort)", "SB_WORKER_HEALTH_PORT": "\(workerPort)",
                "SB_HTTP_INTERNAL_PORT": "\(httpInternalPort)", "SB_GATEWAY_INTERNAL_PORT": "\(gatewayInternalPort)",
                "SB_REDIS_KEY_PREFIX": "sbtest-serve-\(UUID().uuidString.prefix(8)):",
            ]
        )
        // The roles start concurrently, so each is polled until it is up.
        for url in [
            "http://127.0.0.1:\(httpPort)/healthz", "http://127.0.0.1:\(gatewayPort)/healthz", "http://127.0.0.1:\(workerPort)/health",
            "http://127.0.0.1:\(httpInternalPort)/metrics", "http://127.0.0.1:\(gatewayInternalPort)/metrics",
            "http://127.0.0.1:\(gatewayInternalPort)/healthz",
        ] {
            let status = try await Self.pollStatus(url, while: process)
            #expect(status == 200, "\(url) answered \(status.map(String.init) ?? "nothing") within 120 s of start-up")
        }
        // Metrics and the gateway's server API are not on the public ports.
        #expect(await Self.httpStatus("http://127.0.0.1:\(httpPort)/metrics") == 404)
        #expect(await Self.httpStatus("http://127.0.0.1:\(gatewayPort)/metrics") == 404)
        #expect(try await Curl.request("POST", "http://127.0.0.1:\(gatewayPort)/api/info", body: "{}").status == 404)

        process.terminate()  // SIGTERM
        let deadline = Date().addingTimeInterval(30)
        while process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            Issue.record("serve did not stop within 30 s of SIGTERM")
        }
        await process.waitForExit()
        let stderr = String(decoding: await err.fileHandleForReading.readToEndOffPool(), as: UTF8.self)
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 0, "stderr: \(stderr.suffix(2000))")
    }
}
