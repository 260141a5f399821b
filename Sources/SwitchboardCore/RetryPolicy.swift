/// The one retry strategy of Switchboard: how many attempts, and how long to wait between them
/// (exponential backoff with jitter). The worker runtime (module `Queue`) uses it between runs of a
/// job, the AI providers between HTTP calls; each picks its own values.

/// A retry strategy value: attempt `n` (1-based) that failed is followed, while attempts are left,
/// by a wait of `baseDelay × factor^(n-1)` capped at `maxDelay`, spread by `jitter`.
public struct RetryPolicy: Sendable, Hashable {
    /// How a computed wait is randomised, so retries of many callers spread out.
    public enum Jitter: Sendable, Hashable {
        /// Exactly the exponential wait.
        case none
        /// The exponential wait stretched by a random 0…`fraction` of itself: never shorter.
        case proportional(Double)
        /// Uniform between half the base delay and the exponential wait ("full jitter" with a floor).
        case full
    }

    /// Attempts in all, including the first (at least 1 when built with `init`).
    public var maxAttempts: Int
    /// The wait after the first failed attempt, before jitter.
    public var baseDelay: Duration
    /// Growth of the wait per further failed attempt.
    public var factor: Double
    /// The longest wait, before jitter.
    public var maxDelay: Duration
    public var jitter: Jitter
    /// The most a server's own hint (HTTP `Retry-After`) may make a caller wait; longer waits give up.
    public var maxRetryAfter: Duration

    public init(
        maxAttempts: Int = 3, baseDelay: Duration = .milliseconds(250), factor: Double = 2,
        maxDelay: Duration = .seconds(4), jitter: Jitter = .full, maxRetryAfter: Duration = .seconds(10)
    ) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.factor = factor
        self.maxDelay = maxDelay
        self.jitter = jitter
        self.maxRetryAfter = maxRetryAfter
    }

    /// One attempt, no retry.
    public static let none = RetryPolicy(maxAttempts: 1)

    /// True when another attempt may follow the failed attempt `failedAttempt` (1-based).
    public func allowsRetry(afterAttempt failedAttempt: Int) -> Bool { failedAttempt < maxAttempts }

    /// The wait without jitter after `failedAttempt` (1-based) failed: `baseDelay × factor^(n-1)`, at most `maxDelay`.
    public func backoff(afterAttempt failedAttempt: Int) -> Duration {
        let exponent = Double(min(max(0, failedAttempt - 1), 64))
        let seconds = min(maxDelay.inSeconds, baseDelay.inSeconds * power(factor, exponent))
        return .milliseconds(Int64((max(0, seconds) * 1000).rounded()))
    }

    /// The wait before the next attempt after `failedAttempt` (1-based) failed. `random` (0…1) is
    /// the jitter's draw; pass a fixed value for a deterministic wait.
    public func delay(afterAttempt failedAttempt: Int, random: Double = Double.random(in: 0...1)) -> Duration {
        let ceiling = backoff(afterAttempt: failedAttempt)
        let draw = min(1, max(0, random))
        switch jitter {
        case .none:
            return ceiling
        case .proportional(let fraction):
            return .milliseconds(Int64((Double(ceiling.inMilliseconds) * (1 + max(0, fraction) * draw)).rounded()))
        case .full:
            let floor = min(baseDelay / 2, ceiling).inMilliseconds
            let top = max(ceiling.inMilliseconds, floor)
            return .milliseconds(floor + Int64((Double(top - floor) * draw).rounded()))
        }
    }

    /// `base` to the power `exponent` by repeated multiplication (no Foundation in this module).
    private func power(_ base: Double, _ exponent: Double) -> Double {
        var result = 1.0
        var remaining = Int(exponent)
        while remaining > 0 && result.isFinite {
            result *= base
            remaining -= 1
        }
        return result
    }
}
