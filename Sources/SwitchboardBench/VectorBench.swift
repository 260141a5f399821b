/// `switchboard-bench vectors`: the in-process vector index (Files.VectorIndex) on vectors and
/// queries given as raw little-endian float32 files, one query at a time on one thread; prints
/// per-query latency and writes each query's top-k row numbers for comparison with faiss and numpy
/// (scripts/bench/vectors.sh).
///
/// `switchboard-bench index-throughput`: chunks a generated document and indexes it the way the
/// `index` job does (embeddings from the model server at --model-url, chunks and vectors into a
/// throw-away MariaDB database), timing the embedding and the storing separately.
import AIProviders
import Files
import Foundation
import Logging
import Storage
import SwitchboardCore

enum VectorBench {
    static func option(_ arguments: [String], _ name: String) -> String? {
        guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
        return arguments[index + 1]
    }

    static func floats(at path: String) throws -> [Float] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return data.withUnsafeBytes { raw in
            (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }

    static func run(_ arguments: [String]) async throws {
        guard let vectorsPath = option(arguments, "--vectors"), let queriesPath = option(arguments, "--queries"),
              let out = option(arguments, "--out")
        else { throw VectorBenchUsage("vectors --vectors FILE --queries FILE --out IDS [--dim 384] [--k 10]") }
        let dimension = Int(option(arguments, "--dim") ?? "384") ?? 384
        let k = Int(option(arguments, "--k") ?? "10") ?? 10
        let values = try floats(at: vectorsPath)
        let queries = try floats(at: queriesPath)
        let count = values.count / dimension
        let started = ContinuousClock.now
        var index = VectorIndex(dimension: dimension)
        for row in 0..<count {
            index.append(chunkID: Int64(row), fileID: 0, vector: Array(values[(row * dimension)..<((row + 1) * dimension)]))
        }
        let build = ContinuousClock.now - started
        var timings: [Double] = []
        var lines: [String] = []
        // One warm-up pass over the matrix, not timed.
        _ = index.topK(Array(queries[0..<dimension]), k: k)
        for query in 0..<(queries.count / dimension) {
            let vector = Array(queries[(query * dimension)..<((query + 1) * dimension)])
            let begin = ContinuousClock.now
            let top = index.topK(vector, k: k)
            let elapsed = ContinuousClock.now - begin
            timings.append(Double(elapsed.components.seconds) * 1e6 + Double(elapsed.components.attoseconds) / 1e12)
            lines.append(top.map { String($0.row) }.joined(separator: " "))
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: out, atomically: true, encoding: .utf8)
        let sorted = timings.sorted()
        let mean = timings.reduce(0, +) / Double(max(1, timings.count))
        print(String(format: "swift vectors=%d dim=%d queries=%d build_ms=%.0f p50_us=%.0f mean_us=%.0f p99_us=%.0f",
                     count, dimension, timings.count, Double(build.components.attoseconds) / 1e15 + Double(build.components.seconds) * 1000,
                     sorted[sorted.count / 2], mean, sorted[min(sorted.count - 1, sorted.count * 99 / 100)]))
    }

    static func indexThroughput(_ arguments: [String]) async throws {
        let url = option(arguments, "--database") ?? "mariadb://switchboard:switchboard@127.0.0.1:3307/switchboard"
        let modelURL = option(arguments, "--model-url") ?? "http://127.0.0.1:8089/v1"
        let paragraphs = Int(option(arguments, "--paragraphs") ?? "1000") ?? 1000
        let batch = Int(option(arguments, "--batch") ?? "16") ?? 16
        var logger = Logger(label: "bench.index")
        logger.logLevel = .warning
        let words = ["invoice", "shipping", "warehouse", "refund", "contract", "holiday", "policy", "budget", "server", "meeting",
                     "customer", "account", "delivery", "report", "quarter", "review", "payment", "license", "office", "team"]
        var generator = SystemRandomNumberGenerator()
        let text = (0..<paragraphs).map { number in
            (number % 25 == 0 ? "Section \(number / 25)\n\n" : "")
                + (0..<40).map { _ in words.randomElement(using: &generator)! }.joined(separator: " ") + "."
        }.joined(separator: "\n\n")
        let chunks = Chunker(targetCharacters: 800, overlap: 100).chunks(text)
        let provider = try OpenAICompatibleProvider(configuration: .localModelServer(baseURL: modelURL))
        let embedder = Embedder(provider: provider, batchSize: batch)
        let embedStart = ContinuousClock.now
        let vectors = try await embedder.embed(chunks.map(\.text))
        let embedTime = ContinuousClock.now - embedStart
        try? await provider.shutdown()
        try await BenchDatabase.with(url: url, poolSize: 2, label: "idx", logger: logger) { stores in
            let user = try await stores.users.createUser(email: "bench@example.com", name: "B", role: .user)
            let file = try await stores.files.createFile(NewFile(
                ownerID: user.id, name: "bench.txt", mimeType: "text/plain", size: Int64(text.utf8.count), sha256: String(repeating: "0", count: 64),
                storagePath: "/dev/null"))
            let indexed = zip(chunks, vectors).map { IndexedChunk(ordinal: $0.ordinal, text: $0.text, position: $0.position, vector: $1) }
            let storeStart = ContinuousClock.now
            _ = try await stores.documents.replaceChunks(fileID: file.id, ownerID: user.id, model: embedder.model, chunks: indexed)
            let storeTime = ContinuousClock.now - storeStart
            func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
            let total = seconds(embedTime) + seconds(storeTime)
            print(String(format: "index chunks=%d batch=%d embed_s=%.2f store_s=%.3f chunks_per_s=%.1f embed_chunks_per_s=%.1f store_chunks_per_s=%.0f",
                         chunks.count, batch, seconds(embedTime), seconds(storeTime), Double(chunks.count) / total,
                         Double(chunks.count) / seconds(embedTime), Double(chunks.count) / seconds(storeTime)))
        }
    }
}

struct VectorBenchUsage: Error, CustomStringConvertible {
    let description: String
    init(_ usage: String) { description = "usage: switchboard-bench " + usage }
}
