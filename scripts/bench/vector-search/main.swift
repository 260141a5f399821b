// Switchboard's in-process vector index (Sources/Files/VectorIndex.swift, compiled as it is) on
// vectors and queries given as raw little-endian float32 files, one query at a time on one
// thread; prints per-query latency and writes each query's top-k row numbers (scripts/bench/vectors.sh).
import Foundation
import Storage

func option(_ name: String) -> String? {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

func floats(at path: String) throws -> [Float] {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    return data.withUnsafeBytes { raw in
        (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
    }
}

func microseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12
}

let dimension = Int(option("--dim") ?? "384") ?? 384
let k = Int(option("--k") ?? "10") ?? 10
let values = try floats(at: option("--vectors")!)
let queries = try floats(at: option("--queries")!)
let count = values.count / dimension
let started = ContinuousClock.now
var index = VectorIndex(dimension: dimension)
for row in 0..<count {
    index.append(chunkID: Int64(row), fileID: 0, vector: Array(values[(row * dimension)..<((row + 1) * dimension)]))
}
let build = ContinuousClock.now - started
_ = index.topK(Array(queries[0..<dimension]), k: k)  // warm-up, not timed
var timings: [Double] = []
var lines: [String] = []
for query in 0..<(queries.count / dimension) {
    let vector = Array(queries[(query * dimension)..<((query + 1) * dimension)])
    let begin = ContinuousClock.now
    let top = index.topK(vector, k: k)
    timings.append(microseconds(ContinuousClock.now - begin))
    lines.append(top.map { String($0.row) }.joined(separator: " "))
}
try (lines.joined(separator: "\n") + "\n").write(toFile: option("--out")!, atomically: true, encoding: .utf8)
let sorted = timings.sorted()
print(String(format: "swift  vectors=%d dim=%d queries=%d p50_us=%.0f mean_us=%.0f p99_us=%.0f build_ms=%.0f",
             count, dimension, timings.count, sorted[sorted.count / 2], timings.reduce(0, +) / Double(timings.count),
             sorted[min(sorted.count - 1, sorted.count * 99 / 100)], microseconds(build) / 1000))

// With --int8-out: the int8 first pass with `--candidates` rows re-ranked in float32, on the same queries.
if let int8Out = option("--int8-out") {
    let candidates = Int(option("--candidates") ?? "100") ?? 100
    let pass = Int8FirstPass(index)
    _ = pass.topK(Array(queries[0..<dimension]), k: k, candidates: candidates, index: index)
    var int8Timings: [Double] = []
    var int8Lines: [String] = []
    var sameAsExact = 0
    for query in 0..<(queries.count / dimension) {
        let vector = Array(queries[(query * dimension)..<((query + 1) * dimension)])
        let begin = ContinuousClock.now
        let top = pass.topK(vector, k: k, candidates: candidates, index: index)
        int8Timings.append(microseconds(ContinuousClock.now - begin))
        let line = top.map { String($0.row) }.joined(separator: " ")
        if line == lines[query] { sameAsExact += 1 }
        int8Lines.append(line)
    }
    try (int8Lines.joined(separator: "\n") + "\n").write(toFile: int8Out, atomically: true, encoding: .utf8)
    let s = int8Timings.sorted()
    print(String(format: "int8   vectors=%d dim=%d queries=%d candidates=%d p50_us=%.0f mean_us=%.0f p99_us=%.0f same_as_exact=%d/%d",
                 count, dimension, s.count, candidates, s[s.count / 2], int8Timings.reduce(0, +) / Double(s.count),
                 s[min(s.count - 1, s.count * 99 / 100)], sameAsExact, s.count))
}
