/// `switchboard-bench`: load generators and harnesses used by scripts/bench/ and by the queue tests.
/// Each area lives in its own file and exposes `static func run(_ arguments: [String]) async throws`.
import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
let areas: [String: ([String]) async throws -> Void] = [
    "redis": RedisBench.run,
    "storage": StorageBench.run,
    "queue": QueueBench.run,
    "gateway": GatewayLoad.run,
    "pipeline": PipelineLoad.run,
    "sse": SSEStreamsLoad.run,
    "slow-turns": SlowTurnsLoad.run,
    "index-throughput": VectorBench.indexThroughput,
    "email": EmailBench.run,
]
guard let area = arguments.first, let run = areas[area] else {
    FileHandle.standardError.write(Data("usage: switchboard-bench \(areas.keys.sorted().joined(separator: "|")) [options]\n".utf8))
    exit(2)
}
do {
    try await run(Array(arguments.dropFirst()))
} catch {
    FileHandle.standardError.write(Data("switchboard-bench \(area): \(error)\n".utf8))
    exit(1)
}

struct BenchUnavailable: Error, CustomStringConvertible {
    let area: String
    var description: String { "\(area) is not built into this binary" }
}
