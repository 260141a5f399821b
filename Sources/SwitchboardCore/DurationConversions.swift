/// `Duration` as the plain numbers that metrics, JSON and wire formats want.
extension Duration {
    /// The duration in seconds, fractions included (Prometheus values, JSON uptimes).
    public var inSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// The duration in whole milliseconds, rounded toward zero (Redis PX / BLOCK arguments).
    public var inMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
