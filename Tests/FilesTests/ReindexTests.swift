import AIProviders
import Files
import Foundation
import Hummingbird
import HummingbirdTesting
import Queue
import Storage
import SwitchboardApp
import SwitchboardCore
import TestSupport
import Testing

/// `switchboard files reindex`: after a change of embedding model, every file is embedded again
/// by the new model, and vectors of the old one are neither kept nor compared with the new.
@Suite(.enabled(if: ModelServer.available, "SB_TEST_AI_URL is not set: no embedding model (scripts/test sets it)"))
struct ReindexTests {
    @Test func reindexingMovesEveryFileToTheConfiguredModel() async throws {
        try await FilesEnvironment.with { env in
            let node = try await env.node()
            let (owner, key) = try await env.makeUser()
            let fileID = try await env.withWorker(search: node) {
                try await env.application(search: node).test(.router) { client in
                    let id = try #require(try await client.upload("notes.md", Data("# Boiler\n\nThe boiler is serviced every October.".utf8), key: key).json["id"] as? Int)
                    #expect(try await client.settled(id, key: key)["status"] as? String == "indexed")
                    return Int64(id)
                }
            }
            let realModel = env.embedder.model
            #expect(try await env.stores.documents.document(id: fileID)?.embedModel == realModel)

            // The new model: another name, another dimension.
            let newModel = ScriptedProvider(models: [.chat: "c", .sort: "s", .plan: "p", .embed: "bag-of-words"]) { _ in .init(text: "") }
            let newEmbedder = Embedder(provider: newModel, batchSize: 8)
            let indexer = FileIndexer(
                files: env.stores.files, documents: env.stores.documents, embedder: newEmbedder, chunker: Chunker(), redis: env.redis,
                logger: FilesEnvironment.logger)
            #expect(try await AdminCommands.reindex(stores: env.stores, jobs: env.jobs, userEmail: owner.email) == 1)
            #expect(try await env.stores.documents.document(id: fileID)?.status == .indexing)
            let reindexed = try await env.withWorker(search: node, indexer: indexer) {
                try await eventually { try await env.stores.documents.document(id: fileID)?.status == .indexed }
            }
            #expect(reindexed)
            let file = try #require(try await env.stores.documents.document(id: fileID))
            #expect(file.embedModel == "bag-of-words")
            // No vector of the old model is left, and a search with the old model finds nothing.
            #expect(try await env.stores.documents.vectors(ownerID: owner.id, model: realModel, dimension: 384).isEmpty)
            #expect(try await node.search(ownerID: owner.id, query: "When is the boiler serviced?", k: 5).isEmpty)
            let newSearch = FileSearch(embedder: newEmbedder, documents: env.stores.documents, cache: VectorIndexCache(documents: env.stores.documents))
            #expect(try await newSearch.search(ownerID: owner.id, query: "boiler serviced October", k: 5).first?.fileID == fileID)
        }
    }
}
