import AIProviders
import Files
import Foundation
import Logging
import RedisClient
import Storage
import SwitchboardConfig

/// What files and search need on a node: the settings as the Files module takes them, an
/// embedding provider, and this process's per-owner index cache (one per process, subscribed to
/// the index-change channel, shared by the api's search route and the workers' `rag_query`).
final class FilesRuntime: Sendable {
    let configuration: FilesConfiguration
    let provider: OpenAICompatibleProvider
    let cache: VectorIndexCache
    let search: FileSearch
    let embedder: Embedder

    init(settings: Settings, stores: Stores, logger: Logger) throws {
        configuration = Self.configuration(settings.files)
        let providerConfiguration = try AIProviderConfiguration(environment: settings.aiEnvironment) ?? .localModelServer()
        provider = try OpenAICompatibleProvider(configuration: providerConfiguration)
        embedder = Embedder(provider: provider, batchSize: configuration.embedBatchSize)
        cache = VectorIndexCache(
            documents: stores.documents, maxOwners: configuration.cacheOwners, maxBytes: configuration.cacheBytes, ttl: configuration.cacheTTL,
            logger: logger)
        search = FileSearch(embedder: embedder, documents: stores.documents, cache: cache)
    }

    static func configuration(_ files: FileSettings) -> FilesConfiguration {
        FilesConfiguration(
            storageDirectory: files.storageDirectory, maxUploadBytes: files.maxUploadBytes, chunkCharacters: files.chunkCharacters,
            chunkOverlap: files.chunkOverlap, embedBatchSize: files.embedBatchSize, cacheOwners: files.cacheOwners,
            cacheBytes: files.cacheMegabytes << 20, cacheTTL: .seconds(files.cacheTTLSeconds), ragChunks: files.ragChunks,
            ragMinimumScore: Float(files.ragMinimumScore))
    }

    func start(redis: RedisClient) async throws {
        try await cache.start(redis: redis)
    }

    func indexer(stores: Stores, redis: RedisClient, logger: Logger) -> FileIndexer {
        FileIndexer(
            files: stores.files, documents: stores.documents, embedder: embedder,
            chunker: Chunker(targetCharacters: configuration.chunkCharacters, overlap: configuration.chunkOverlap), redis: redis,
            logger: logger)
    }

    var services: FileServices { FileServices(configuration: configuration, search: search) }

    func shutdown() async {
        await cache.stop()
        try? await provider.shutdown()
    }
}
