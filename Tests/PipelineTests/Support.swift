import AIProviders
import Foundation
import Logging
import Pipeline
import RedisClient
import Storage
import SwitchboardCore
import Testing

/// A throw-away `switchboard_test_<random>` database on the server at SB_TEST_DATABASE_URL, dropped at the end.
enum TestDatabase {
    static var url: String {
        ProcessInfo.processInfo.environment["SB_TEST_DATABASE_URL"] ?? "mariadb://switchboard:switchboard@127.0.0.1:3307/switchboard"
    }

    static func with<T>(_ body: (Stores) async throws -> T) async throws -> T {
        var configuration = try DatabaseConfiguration(url: url)
        configuration.poolSize = 1
        let admin = try await Database.connect(configuration)
        let name = "switchboard_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        try await admin.withSession { try await $0.executeText("CREATE DATABASE `\(name)` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci") }
        configuration.database = name
        configuration.poolSize = 4
        let result: Result<T, any Error>
        do {
            let database = try await Database.connect(configuration)
            do {
                try await Migrator(database: database).migrate()
                result = .success(try await body(Stores(database: database)))
            } catch {
                result = .failure(error)
            }
            await database.shutdown()
        } catch {
            result = .failure(error)
        }
        _ = try? await admin.withSession { try await $0.executeText("DROP DATABASE IF EXISTS `\(name)`") }
        await admin.shutdown()
        return try result.get()
    }
}

/// A Redis client whose keys and channels carry a random prefix, so parallel tests never meet.
enum TestRedis {
    static func client() throws -> RedisClient {
        var configuration = try RedisConfiguration(url: ProcessInfo.processInfo.environment["SB_TEST_REDIS_URL"] ?? "redis://127.0.0.1:6380/0")
        configuration.keyPrefix = "sbtest:\(UUID().uuidString.prefix(8)):"
        return RedisClient(configuration: configuration, logger: Logger(label: "test.redis"))
    }

    /// Deletes every key under the client's prefix.
    static func clean(_ redis: RedisClient) async {
        if let keys = try? await redis.send(RedisCommand("KEYS", redis.configuration.keyPrefix + "*")).array {
            let names = keys.compactMap(\.string)
            if !names.isEmpty { _ = try? await redis.send(RedisCommand("DEL", arguments: names)) }
        }
        await redis.close()
    }
}

/// The model server of `scripts/llm`, started once per test process (it builds llama.cpp on first use).
enum LocalModelServer {
    static let enabled = ProcessInfo.processInfo.environment["SB_TEST_LLM"] != "0"

    private static let started = Task<String, any Error> {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let process = Process()
        process.executableURL = root.appendingPathComponent("scripts/llm")
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = await Task.detached { out.fileHandleForReading.readDataToEndOfFile() }.value
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ModelServerUnavailable() }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    struct ModelServerUnavailable: Error {}

    static func provider() async throws -> OpenAICompatibleProvider {
        try OpenAICompatibleProvider(configuration: .localModelServer(baseURL: try await started.value))
    }
}

/// Chat from a script, embeddings from a real provider: routing decisions by the real MiniLM
/// model without depending on what a 135M chat model writes.
struct ScriptedChatRealEmbeddings: AIProvider {
    var script: ScriptedProvider
    var embedder: any AIProvider
    var name: String { "hybrid" }
    func model(for slot: ModelSlot) -> String { slot == .embed ? embedder.model(for: .embed) : script.model(for: slot) }
    func streamChat(_ request: ChatRequest) async throws -> ChatStream { try await script.streamChat(request) }
    func chat(_ request: ChatRequest) async throws -> ChatCompletion { try await script.chat(request) }
    func embed(_ texts: [String], model: String?) async throws -> EmbeddingResult { try await embedder.embed(texts, model: model) }
}

extension Array where Element == PipelineEvent {
    var chunks: String {
        compactMap { if case .chunk(let text) = $0 { text } else { nil } }.joined()
    }

    var updates: [(String, NodeState)] {
        compactMap { if case .taskUpdate(let id, let state, _) = $0 { (id, state) } else { nil } }
    }
}
