import AIProviders
import Foundation
import Logging
import Pipeline
import RedisClient
import Storage
import SwitchboardCore
import TestSupport
import Testing
import Turns

/// A throw-away `switchboard_test_<random>` database (see TestSupport), as stores.
enum TestDatabase {
    static func with<T>(_ body: (Stores) async throws -> T) async throws -> T {
        try await ThrowawayDatabase.with(poolSize: 4) { database, _ in try await body(Stores(database: database)) }
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
