enum QueueBench {
    static func run(_ arguments: [String]) async throws {
        throw BenchUnavailable(area: "QueueBench")
    }
}
