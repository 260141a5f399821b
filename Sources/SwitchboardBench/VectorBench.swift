/// `switchboard-bench index-throughput` (scripts/bench/vectors.sh): chunks a generated document and indexes it the way the
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
