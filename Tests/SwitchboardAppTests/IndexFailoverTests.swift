import Files
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Queue
import Storage
import SwitchboardCore
import TestSupport
import Testing

/// An embeddings server in a Python subprocess that answers every request slowly (`interval`
/// seconds) with a deterministic vector per text, and counts the requests it has answered.
final class SlowEmbeddingServer: Sendable {
    let process: Process
    let port: Int
    let counter: URL
    var baseURL: String { "http://127.0.0.1:\(port)/v1" }

    init(interval: Double, directory: URL) throws {
        port = try TestServices.freePort()
        counter = directory.appendingPathComponent("embed-requests")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-u", "-c", Self.script, "\(port)", "\(interval)", counter.path]
        try process.run(loggingTo: directory.appendingPathComponent("embed.log"))
        self.process = process
    }

    var requests: Int { Int((try? String(contentsOf: counter, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0 }

    func waitUntilReady() async throws {
        let url = URL(string: "http://127.0.0.1:\(port)/health")!
        let ready = try await eventually(within: .seconds(20)) {
            var request = URLRequest(url: url)
            request.timeoutInterval = 1
            return (try? await URLSession.shared.data(for: request)) != nil
        }
        if !ready { throw StackError("the embedding server did not start") }
    }

    func stop() async {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        await process.waitForExit()
    }

    static let script = #"""
import hashlib, json, sys, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
port, interval, counter = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
answered = 0
def vector(text):
    digest = hashlib.sha256(text.encode()).digest()
    return [b / 255.0 + 0.01 for b in digest[:8]]
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send_json(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        self.send_json({"ok": True})
    def do_POST(self):
        global answered
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        texts = request.get("input") or []
        texts = [texts] if isinstance(texts, str) else texts
        time.sleep(interval)
        self.send_json({"model": "slow-embed", "data": [{"index": i, "embedding": vector(t)} for i, t in enumerate(texts)]})
        answered += 1
        open(counter, "w").write(str(answered))
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"""#
}

/// A worker killed while it embeds a file's chunks: another worker reclaims the `index_file` job,
/// the file still ends `indexed`, and it has exactly one set of chunks.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct IndexFailoverTests {
    @Test func aWorkerKilledMidIndexingLeavesNoDuplicateChunks() async throws {
        let binary = ProcessTests.binary
        try #require(FileManager.default.isExecutableFile(atPath: binary.path), "build the switchboard binary first (\(binary.path))")
        let workers = try WorkerProcesses()
        let embeddings = try SlowEmbeddingServer(interval: 0.3, directory: workers.directory)
        let outcome = await capture { try await Self.failover(workers: workers, embeddings: embeddings) }
        await workers.killAll()
        await embeddings.stop()
        try outcome.get()
    }

    static func failover(workers: WorkerProcesses, embeddings: SlowEmbeddingServer) async throws {
        try await embeddings.waitUntilReady()
        try await LiveStack.with { stack in
            let storage = workers.directory.appendingPathComponent("files").path
            func environment(_ id: String, visibility: Int) throws -> [String: String] {
                [
                    "SB_REDIS_URL": TestServices.redisURL, "SB_REDIS_KEY_PREFIX": stack.keyPrefix, "SB_DATABASE_URL": stack.databaseURL,
                    "SB_WORKER_ID": id, "SB_WORKER_QUEUES": "extract,index", "SB_WORKER_HEALTH_PORT": "\(try TestServices.freePort())",
                    "SB_WORKER_VISIBILITY_TIMEOUT": "\(visibility)", "SB_AI_BASE_URL": embeddings.baseURL, "SB_AI_MODEL": "none",
                    "SB_AI_EMBED_MODEL": "slow-embed", "SB_FILES_STORAGE_DIR": storage, "SB_FILES_EMBED_BATCH_SIZE": "2",
                    "SB_FILES_CHUNK_CHARACTERS": "200", "SB_LOG_LEVEL": "info",
                ]
            }
            let user = try await stack.stores.users.createUser(email: "idx\(UInt32.random(in: 0...UInt32.max))@example.com", name: "I", role: .user)
            // About 30 chunks, embedded two per request at 0.3 s a request.
            let text = (0..<30).map { "Paragraph \($0) says that item \($0) of the inventory is kept on shelf \($0 * 7) near the north door." }
                .joined(separator: "\n\n")
            let intake = FileIntake(
                stores: stack.stores, jobs: JobQueue(client: stack.redis), configuration: FilesConfiguration(storageDirectory: storage))
            let file = try await intake.create(ownerID: user.id, name: "inventory.txt", data: Data(text.utf8))

            let first = try workers.start("worker-a", environment: try environment("worker-a", visibility: 30))
            let embedding = try await eventually(within: .seconds(60)) { embeddings.requests >= 3 }
            try #require(embedding, "worker A never embedded; its log:\n\(workers.log("worker-a").suffix(3000))")
            try await WorkerProcesses.kill9(first)
            let midway = try #require(try await stack.stores.documents.document(id: file.id))
            #expect(midway.status == .indexing, "worker A finished before it was killed")

            _ = try workers.start("worker-b", environment: try environment("worker-b", visibility: 1))
            let indexed = try await eventually(within: .seconds(120)) {
                try await stack.stores.documents.document(id: file.id)?.status == .indexed
            }
            try #require(indexed, "worker B's log:\n\(workers.log("worker-b").suffix(3000))")
            let stored = try #require(try await stack.stores.documents.document(id: file.id))
            let chunks = try await stack.stores.chunks.chunks(fileID: file.id, ownerID: user.id)
            #expect(stored.chunkCount > 10)
            #expect(chunks.count == stored.chunkCount)
            #expect(chunks.map(\.ordinal) == Array(0..<stored.chunkCount))
            #expect(Set(chunks.map(\.text)).count == chunks.count)
            #expect(chunks.allSatisfy { $0.embedding.count == 8 })
            #expect(stored.embedModel == "slow-embed")
        }
    }
}
