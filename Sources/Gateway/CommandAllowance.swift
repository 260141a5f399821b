/// The per-client command rate limit (a token bucket).

/// A token bucket: `burst` commands at once, refilled at `rate` per second.
struct CommandAllowance: Sendable {
    private var tokens: Double?
    private var refilledAt = ContinuousClock.now

    mutating func take(at now: ContinuousClock.Instant, rate: Int, burst: Int) -> Bool {
        let elapsed = now - refilledAt
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        tokens = min(Double(burst), (tokens ?? Double(burst)) + seconds * Double(rate))
        refilledAt = now
        guard tokens! >= 1 else { return false }
        tokens! -= 1
        return true
    }
}
