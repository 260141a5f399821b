/// Start-up waits for the servers a role needs: Redis answering PING and MariaDB accepting a first
/// connection, retried with backoff (0.5 s doubling to 5 s) for up to `startup.wait_seconds`, each
/// failed attempt logged with its reason and the server's address without its password. After the
/// time the role stops with an error naming the server and the setting.
import Logging
import RedisClient
import Storage
import SwitchboardConfig

/// The pauses between attempts: `initial`, doubled after each failure, never above `maximum`.
struct StartupBackoff: Sendable, Equatable {
    var initial: Duration = .milliseconds(500)
    var maximum: Duration = .seconds(5)

    /// The pause after failed attempt number `attempt` (1-based).
    func delay(afterAttempt attempt: Int) -> Duration {
        var delay = initial
        for _ in 1..<max(1, attempt) {
            delay = delay * 2
            if delay >= maximum { return maximum }
        }
        return min(delay, maximum)
    }

    /// Every pause taken when no attempt succeeds within `budget` (attempts themselves taking no
    /// time): the last one is shortened so that the final attempt comes at the end of the budget.
    func schedule(within budget: Duration) -> [Duration] {
        var pauses: [Duration] = []
        var elapsed = Duration.zero
        var attempt = 1
        while elapsed < budget {
            let pause = min(delay(afterAttempt: attempt), budget - elapsed)
            pauses.append(pause)
            elapsed += pause
            attempt += 1
        }
        return pauses
    }
}

/// A server that did not answer within `startup.wait_seconds`.
struct StartupWaitError: Error, CustomStringConvertible {
    let server: String
    let address: String
    let waitSeconds: Int
    let attempts: Int
    let lastError: any Error

    var description: String {
        let waited = waitSeconds == 0 ? "startup.wait_seconds is 0, so start-up does not wait" : "gave up after \(attempts) attempts in \(waitSeconds) s"
        return "cannot reach \(server) at \(address): \(lastError) (\(waited); raise startup.wait_seconds / SB_STARTUP_WAIT_SECONDS to wait longer)"
    }
}

enum StartupWait {
    /// Runs `attempt` until it succeeds or `waitSeconds` have passed, pausing by `backoff` between
    /// failures and logging each one. `address` must already be redacted.
    static func retrying<T>(
        _ server: String, address: String, waitSeconds: Int, backoff: StartupBackoff = StartupBackoff(), logger: Logger,
        _ attempt: () async throws -> T
    ) async throws -> T {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(waitSeconds)
        var attempts = 0
        while true {
            attempts += 1
            do {
                let value = try await attempt()
                if attempts > 1 { logger.info("\(server) answers; starting", metadata: ["server": "\(server)", "attempts": "\(attempts)"]) }
                return value
            } catch {
                // A wrong URL does not get better by waiting, and a cancelled start-up stops.
                if error is ConfigError || error is CancellationError { throw error }
                let remaining = clock.now.duration(to: deadline)
                if remaining <= .zero {
                    throw StartupWaitError(server: server, address: address, waitSeconds: waitSeconds, attempts: attempts, lastError: error)
                }
                let pause = min(backoff.delay(afterAttempt: attempts), remaining)
                logger.warning(
                    "\(server) is not reachable yet; retrying",
                    metadata: [
                        "server": "\(server)", "address": "\(address)", "attempt": "\(attempts)", "error": "\(error)",
                        "retry_in": "\(seconds(pause)) s", "gives_up_in": "\(seconds(remaining)) s (startup.wait_seconds)",
                    ])
                try await Task.sleep(for: pause)
            }
        }
    }

    /// PING until Redis answers (the client connects lazily, so nothing else would notice).
    static func redis(_ redis: RedisClient, settings: Settings, logger: Logger) async throws {
        try await retrying(
            "Redis", address: Settings.redactedURL(settings.redis.url), waitSeconds: settings.startupWaitSeconds, logger: logger
        ) { try await redis.ping() }
    }

    /// `Database.connect` (which opens a first connection) until MariaDB accepts one.
    static func database(settings: Settings, logger: Logger) async throws -> Database {
        try await retrying(
            "MariaDB", address: Settings.redactedURL(settings.database.url), waitSeconds: settings.startupWaitSeconds, logger: logger
        ) { try await Clients.database(settings: settings, logger: logger) }
    }

    private static func seconds(_ duration: Duration) -> String {
        let value = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return String((value * 10).rounded() / 10)
    }
}
