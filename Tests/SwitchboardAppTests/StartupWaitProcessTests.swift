import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `switchboard worker`, the real executable, started before its servers answer: it waits for
/// Redis (logging why, never the password) and comes up once Redis does; with
/// `startup.wait_seconds` small it gives up and exits non-zero naming the server and the setting.
@Suite(.serialized) struct StartupWaitProcessTests {
    @Test func workerStartedBeforeRedisComesUpOnceRedisAnswers() async throws {
        let password = "Pw-startup-\(UUID().uuidString.prefix(8))"
        // Its port is chosen now; nothing listens there until start().
        let redis = try await PrivateRedisServer(extraArguments: ["--requirepass", password], start: false)
        let healthPort = try TestServices.freePort()
        let (process, _, err) = try ProcessTests.launch(
            ["worker"],
            environment: [
                "SB_REDIS_URL": "redis://:\(password)@127.0.0.1:\(redis.port)/0", "SB_STARTUP_WAIT_SECONDS": "120",
                "SB_WORKER_HEALTH_PORT": "\(healthPort)", "SB_REDIS_KEY_PREFIX": "sbtest-startup-\(UUID().uuidString.prefix(8)):",
            ])
        async let errors = err.fileHandleForReading.readToEndOffPool()

        // Without Redis the worker neither exits nor answers /health.
        try await Task.sleep(for: .seconds(2))
        #expect(process.isRunning, "the worker waits for Redis instead of exiting")
        #expect(await ProcessTests.httpStatus("http://127.0.0.1:\(healthPort)/health") == nil)

        try await redis.start()
        let status = try await ProcessTests.pollStatus("http://127.0.0.1:\(healthPort)/health", while: process)
        #expect(status == 200, "the worker answers /health within 120 s of Redis starting: \(process.isRunning ? "still starting" : "exited")")

        process.terminate()  // SIGTERM
        let deadline = Date().addingTimeInterval(30)
        while process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        await process.waitForExit()
        let log = String(decoding: await errors, as: UTF8.self)
        await redis.destroy()

        #expect(process.terminationStatus == 0, "\(log.suffix(2000))")
        #expect(log.contains("Redis is not reachable yet; retrying"), "each failed attempt is logged: \(log.prefix(2000))")
        #expect(log.contains("127.0.0.1:\(redis.port)"), "the log names the server's address")
        #expect(!log.contains(password), "the password never reaches the log")
    }

    @Test func workerGivesUpOnRedisAfterTheConfiguredTime() async throws {
        let port = try TestServices.freePort()
        let started = Date()
        let finished = try await ProcessTests.run(
            ["worker"],
            environment: [
                "SB_REDIS_URL": "redis://:Pw-never-printed@127.0.0.1:\(port)/0", "SB_STARTUP_WAIT_SECONDS": "2",
                "SB_WORKER_HEALTH_PORT": "\(try TestServices.freePort())",
            ])
        #expect(finished.status != 0)
        #expect(finished.stderr.contains("cannot reach Redis at redis://:***@127.0.0.1:\(port)/0"), "\(finished.stderr.suffix(2000))")
        #expect(finished.stderr.contains("startup.wait_seconds"))
        #expect(finished.stderr.contains("Redis is not reachable yet; retrying"))
        #expect(!finished.stderr.contains("Pw-never-printed"))
        #expect(Date().timeIntervalSince(started) >= 2, "it waited the configured time")
    }

    @Test func workerWithNoWaitFailsAtOnceOnMariaDB() async throws {
        let port = try TestServices.freePort()
        let finished = try await ProcessTests.run(
            ["worker"],
            environment: [
                "SB_DATABASE_URL": "mariadb://switchboard:Pw-never-printed@127.0.0.1:\(port)/switchboard", "SB_STARTUP_WAIT_SECONDS": "0",
                "SB_WORKER_HEALTH_PORT": "\(try TestServices.freePort())",
            ])
        #expect(finished.status != 0)
        #expect(finished.stderr.contains("cannot reach MariaDB at mariadb://switchboard:***@127.0.0.1:\(port)/switchboard"), "\(finished.stderr.suffix(2000))")
        #expect(finished.stderr.contains("startup.wait_seconds is 0"))
        #expect(!finished.stderr.contains("retrying"), "0 s: no retry")
        #expect(!finished.stderr.contains("Pw-never-printed"))
    }
}
