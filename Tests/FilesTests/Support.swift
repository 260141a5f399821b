import AIProviders
import APIServer
import Files
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Pipeline
import Queue
import RedisClient
import Storage
import SwitchboardCore
import TestSupport
import Testing
import ZIPFoundation

/// The local model server of `scripts/llm` (all-MiniLM-L6-v2 embeddings, 384 values).
enum ModelServer {
    static var url: String? { ProcessInfo.processInfo.environment["SB_TEST_AI_URL"] }
    static var available: Bool { url != nil }
}

/// Chat, sort and plan answered by a script; embeddings by the real model server.
struct RealEmbeddings: AIProvider {
    let chat: ScriptedProvider
    let embeddings: OpenAICompatibleProvider

    var name: String { "scripted+embeddings" }
    func model(for slot: ModelSlot) -> String { slot == .embed ? embeddings.model(for: .embed) : chat.model(for: slot) }
    func streamChat(_ request: ChatRequest) async throws -> ChatStream { try await chat.streamChat(request) }
    func chat(_ request: ChatRequest) async throws -> ChatCompletion { try await chat.chat(request) }
    func embed(_ texts: [String], model: String?) async throws -> EmbeddingResult { try await embeddings.embed(texts, model: model) }
}

/// Real Redis, MariaDB, model server and workers for one test: a random Redis prefix, a
/// throw-away database, a temporary upload directory, and api nodes with their own index caches.
struct FilesEnvironment: Sendable {
    let redis: RedisClient
    let stores: Stores
    let jobs: JobQueue
    let configuration: FilesConfiguration
    let provider: any AIProvider
    let embeddingsProvider: OpenAICompatibleProvider

    static var logger: Logger {
        var logger = Logger(label: "files-tests")
        logger.logLevel = .warning
        return logger
    }

    static func with<T>(
        maxUploadBytes: Int = 1 << 20, chat: ScriptedProvider = Self.scripted, _ body: (FilesEnvironment) async throws -> T
    ) async throws -> T {
        let redis = try TestRedis.client(logger: logger)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sb-files-\(UUID().uuidString)").path
        let embeddings = try OpenAICompatibleProvider(configuration: .localModelServer(baseURL: ModelServer.url ?? "http://127.0.0.1:8089/v1"))
        let result: Result<T, any Error>
        do {
            result = .success(try await ThrowawayDatabase.with(logger: logger) { database, _ in
                let stores = Stores(database: database)
                let environment = FilesEnvironment(
                    redis: redis, stores: stores, jobs: JobQueue(client: redis, logger: logger),
                    configuration: FilesConfiguration(storageDirectory: directory, maxUploadBytes: maxUploadBytes, chunkCharacters: 400, chunkOverlap: 50, embedBatchSize: 8),
                    provider: RealEmbeddings(chat: chat, embeddings: embeddings), embeddingsProvider: embeddings)
                return try await body(environment)
            })
        } catch {
            result = .failure(error)
        }
        try? await embeddings.shutdown()
        try? FileManager.default.removeItem(atPath: directory)
        await TestRedis.discard(redis)
        return try result.get()
    }

    /// Sorter: one topic, one intent; chat: a fixed answer.
    static let scripted = ScriptedProvider { request in
        switch request.slot {
        case .sort: return .init(text: #"{"topic":"general","language":"en","web_search":false,"multi":false}"#)
        default: return .init(text: "the answer")
        }
    }

    var embedder: Embedder { Embedder(provider: provider, batchSize: configuration.embedBatchSize) }

    /// A search as one node has it: its own index cache, subscribed to index changes.
    func node() async throws -> FileSearch {
        let cache = VectorIndexCache(documents: stores.documents, logger: Self.logger)
        try await cache.start(redis: redis)
        return FileSearch(embedder: embedder, documents: stores.documents, cache: cache)
    }

    func indexer() -> FileIndexer {
        FileIndexer(
            files: stores.files, documents: stores.documents, embedder: embedder,
            chunker: Chunker(targetCharacters: configuration.chunkCharacters, overlap: configuration.chunkOverlap), redis: redis,
            logger: Self.logger)
    }

    func dependencies(search: FileSearch?) -> APIDependencies {
        var dependencies = APIDependencies(redis: redis, stores: stores, jobs: jobs, limits: .disabled)
        dependencies.files = FileServices(configuration: configuration, search: search)
        return dependencies
    }

    func application(search: FileSearch?) -> some ApplicationProtocol {
        Application(router: APIApplication.buildRouter(dependencies: dependencies(search: search)), logger: Self.logger)
    }

    /// A user with one API key.
    func makeUser() async throws -> (user: User, key: String) {
        let email = "u\(UInt32.random(in: 0...UInt32.max))@example.com"
        let accounts = Accounts(stores: stores)
        let user = try await accounts.createUser(email: email)
        let key = try await accounts.createAPIKey(userEmail: email)
        return (user, key.secret)
    }

    /// Workers for `extract`, `index` and turns (answered by the pipeline with `search`) for the
    /// duration of `body`.
    func withWorker<T>(search: FileSearch, indexer: FileIndexer? = nil, _ body: () async throws -> T) async throws -> T {
        var registry = JobRegistry()
        let pipeline = RoutingPipeline(provider: provider, stores: stores, redis: redis, logger: Self.logger, search: search)
        PipelineJobs.register(in: &registry, pipeline: pipeline, stores: stores, redis: redis, indexer: indexer ?? self.indexer())
        let configuration = WorkerConfiguration(
            workerID: "files-worker-\(UInt32.random(in: 0...UInt32.max))", queues: [.ai, .extract, .index, .delivery], concurrency: 4,
            healthPort: 0, blockTime: .milliseconds(100))
        let worker = try WorkerService(client: redis, registry: registry, configuration: configuration, logger: Self.logger)
        let task = Task { try await worker.run() }
        defer {
            worker.beginStopping()
            task.cancel()
        }
        let result = try await body()
        worker.beginStopping()
        task.cancel()
        _ = await task.result
        return result
    }
}

/// Waits (bounded by attempts, not asserted on time) until `condition` holds.
func eventually(attempts: Int = 600, every pause: Duration = .milliseconds(100), _ condition: () async throws -> Bool) async throws -> Bool {
    for _ in 0..<attempts {
        if try await condition() { return true }
        try await Task.sleep(for: pause)
    }
    return false
}

/// Test documents, made here.
enum Documents {
    /// A PDF with one page per entry of `pages`.
    static func pdf(pages: [String]) -> Data { TestDocuments.pdf(pages: pages) }

    /// A DOCX whose body holds `paragraphs`, zipped with ZIPFoundation.
    static func docx(paragraphs: [String]) throws -> Data {
        let body = paragraphs.map { "<w:p><w:r><w:t xml:space=\"preserve\">\($0)</w:t></w:r></w:p>" }.joined()
        let xml = #"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>"#
            + body + "</w:body></w:document>"
        return try zip(["[Content_Types].xml": Data(#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>"#.utf8),
                        "word/document.xml": Data(xml.utf8)])
    }

    /// A "DOCX" whose document.xml unpacks to `megabytes` MB of zeros from a few KB: a ZIP bomb.
    static func zipBomb(megabytes: Int) throws -> Data {
        try zip(["word/document.xml": Data(count: megabytes << 20)])
    }

    static func zip(_ entries: [String: Data]) throws -> Data {
        let archive = try Archive(data: Data(), accessMode: .create)
        for (path, data) in entries.sorted(by: { $0.key < $1.key }) {
            try archive.addEntry(with: path, type: .file, uncompressedSize: Int64(data.count), compressionMethod: .deflate) { position, size in
                data.subdata(in: Int(position)..<(Int(position) + size))
            }
        }
        return archive.data!
    }

    /// A multipart/form-data body with one `file` part, and form fields before it (`after`: after it).
    static func multipart(
        name: String, data: Data, field: String = "file", fields: [(String, String)] = [], after: Bool = false,
        boundary: String = "sbBoundary7MA4YWxk"
    ) -> (body: ByteBuffer, contentType: String) {
        var buffer = ByteBuffer()
        func writeFields() {
            for (name, value) in fields {
                buffer.writeString("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n")
            }
        }
        if !after { writeFields() }
        buffer.writeString("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(field)\"; filename=\"\(name)\"\r\nContent-Type: application/octet-stream\r\n\r\n")
        buffer.writeBytes(data)
        buffer.writeString("\r\n")
        if after { writeFields() }
        buffer.writeString("--\(boundary)--\r\n")
        return (buffer, "multipart/form-data; boundary=\(boundary)")
    }
}

extension TestResponse {
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:] }
    var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
}

extension TestClientProtocol {
    /// Uploads `data` as `name`; answers the response.
    func upload(_ name: String, _ data: Data, key: String, fields: [(String, String)] = [], after: Bool = false) async throws -> TestResponse {
        let (body, contentType) = Documents.multipart(name: name, data: data, fields: fields, after: after)
        return try await execute(uri: "/api/v1/files", method: .post, headers: [.authorization: "Bearer \(key)", .contentType: contentType], body: body)
    }

    func getJSON(_ uri: String, key: String) async throws -> TestResponse {
        try await execute(uri: uri, method: .get, headers: [.authorization: "Bearer \(key)"])
    }

    /// Waits until the file leaves queued/extracting/indexing; answers its JSON.
    func settled(_ id: Int, key: String) async throws -> [String: Any] {
        var last: [String: Any] = [:]
        _ = try await eventually {
            last = try await getJSON("/api/v1/files/\(id)", key: key).json
            let status = last["status"] as? String
            return status == "indexed" || status == "failed"
        }
        return last
    }

    func search(_ query: String, key: String, k: Int = 5, extra: String = "") async throws -> [[String: Any]] {
        let encoded = query.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? query
        let response = try await getJSON("/api/v1/search?q=\(encoded)&k=\(k)\(extra)", key: key)
        #expect(response.status == .ok, "search answered \(response.status): \(String(buffer: response.body))")
        return response.json["data"] as? [[String: Any]] ?? []
    }
}
