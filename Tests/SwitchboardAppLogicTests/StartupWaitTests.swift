import Logging
import SwitchboardConfig
import Synchronization
import Testing

@testable import SwitchboardApp

/// The start-up wait for Redis and MariaDB without either: its backoff schedule, and the retry loop
/// driven by attempts that fail on purpose.
@Suite struct StartupWaitTests {
    struct Refused: Error, CustomStringConvertible {
        var description: String { "connection refused" }
    }

    @Test func backoffDoublesFromHalfASecondAndStaysAtFiveSeconds() {
        let backoff = StartupBackoff()
        #expect((1...7).map { backoff.delay(afterAttempt: $0) } == [
            .milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(5), .seconds(5), .seconds(5),
        ])
        #expect(backoff.delay(afterAttempt: 10_000) == .seconds(5))
    }

    @Test func scheduleFillsTheBudgetAndNoMore() {
        let backoff = StartupBackoff()
        let minute = backoff.schedule(within: .seconds(60))
        #expect(Array(minute.prefix(5)) == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(5)])
        #expect(minute.reduce(.zero, +) == .seconds(60))
        #expect(minute.allSatisfy { $0 <= .seconds(5) })
        // 0.5 + 1 + 2 + 4 = 7.5, then ten pauses of 5 s, then the last 2.5 s to the end.
        #expect(minute.count == 15)
        #expect(minute.last == .milliseconds(2500))
        #expect(backoff.schedule(within: .seconds(3)) == [.milliseconds(500), .seconds(1), .milliseconds(1500)])
        #expect(backoff.schedule(within: .zero).isEmpty, "0 s: no pause, the first failure is final")
    }

    @Test func retriesUntilTheServerAnswers() async throws {
        let calls = Mutex(0)
        let fast = StartupBackoff(initial: .milliseconds(1), maximum: .milliseconds(4))
        let value = try await StartupWait.retrying("Redis", address: "redis://h:6379/0", waitSeconds: 60, backoff: fast, logger: Logger(label: "test")) {
            let call = calls.withLock { $0 += 1; return $0 }
            if call < 4 { throw Refused() }
            return "up"
        }
        #expect(value == "up")
        #expect(calls.withLock { $0 } == 4)
    }

    @Test func zeroSecondsFailsAtTheFirstRefusalNamingServerAndSetting() async {
        let calls = Mutex(0)
        do {
            try await StartupWait.retrying("MariaDB", address: "mariadb://sb:***@db:3306/sb", waitSeconds: 0, logger: Logger(label: "test")) {
                calls.withLock { $0 += 1 }
                throw Refused()
            }
            Issue.record("a refusal with startup.wait_seconds 0 must fail")
        } catch {
            #expect(calls.withLock { $0 } == 1)
            let message = "\(error)"
            #expect(message.contains("cannot reach MariaDB at mariadb://sb:***@db:3306/sb"))
            #expect(message.contains("connection refused"))
            #expect(message.contains("startup.wait_seconds"))
        }
    }

    @Test func aConfigurationErrorIsNotRetried() async {
        let calls = Mutex(0)
        await #expect(throws: ConfigError.self) {
            try await StartupWait.retrying("MariaDB", address: "x", waitSeconds: 60, logger: Logger(label: "test")) {
                calls.withLock { $0 += 1 }
                throw ConfigError(key: "database.url", "malformed")
            }
        }
        #expect(calls.withLock { $0 } == 1)
    }
}
