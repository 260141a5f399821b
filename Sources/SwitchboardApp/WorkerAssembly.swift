import AIProviders
import APIServer
import Channels
import Files
import Foundation
import Logging
import Pipeline
import Queue
import RedisClient
import ServiceLifecycle
import Storage
import SwitchboardConfig
import Turns

/// The worker role: one `WorkerService` over the configured queues with every job type this
/// build knows, and its `/health` + `/metrics` server.
enum WorkerAssembly {
    static func configuration(settings: Settings) throws -> WorkerConfiguration {
        let queues: [QueueName]
        do {
            queues = try settings.worker.queues.map { name throws(QueueError) in try QueueName.parse(name) }
        } catch {
            throw ConfigError(key: "worker.queues", "\(error)")
        }
        return WorkerConfiguration(
            workerID: settings.worker.id ?? WorkerConfiguration.defaultWorkerID(),
            queues: queues,
            concurrency: settings.worker.concurrency,
            jobTimeout: .seconds(settings.worker.jobTimeout),
            maxRetries: settings.worker.maxRetries,
            visibilityTimeout: .seconds(settings.worker.visibilityTimeout),
            gracePeriod: .seconds(settings.worker.gracePeriod),
            healthHost: settings.worker.healthHost,
            healthPort: settings.worker.healthPort
        )
    }

    static func make(settings: Settings, redis: RedisClient, registry: JobRegistry, logger: Logger) throws -> [any Service] {
        let worker: WorkerService
        do {
            worker = try WorkerService(client: redis, registry: registry, configuration: configuration(settings: settings), logger: logger)
        } catch let error as QueueError {
            throw ConfigError(key: "worker", "\(error)")
        }
        // The health server is listed first so that it stops last: while the worker drains,
        // `/health` still answers (with status "draining").
        // Its errors in the api's JSON shape, a request the parser cannot read included.
        let edge = WorkerHealthServer.Edge(configure: PlainListenerEdge.configure, channelHandlers: PlainListenerEdge.channelHandlers)
        return [WorkerHealthServer(worker: worker, logger: logger, edge: edge), worker]
    }

    /// Every 30 s one worker (a Redis lock) queues the turns of messages left `queued` for over a
    /// minute: what an api node that died between storing and queuing left behind.
    static func queuedTurnSweeper(stores: Stores, redis: RedisClient, logger: Logger) -> any Service {
        let recovery = QueuedTurnRecovery(messages: stores.messages, jobs: JobQueue(client: redis, logger: logger), redis: redis)
        return PeriodicService(name: "queued-turn-sweep", interval: .seconds(30), logger: logger) { logger in
            try await recovery.sweep(lockFor: .seconds(25), logger: logger)
        }
    }
}

/// Everything the worker needs to run turns through the pipeline.
final class PipelineRuntime: Sendable {
    let provider: OpenAICompatibleProvider
    let pipeline: RoutingPipeline
    /// Indexes files on the `index` queue (nil: this worker leaves them to others).
    let indexer: FileIndexer?

    init(environment: [String: String], stores: Stores, redis: RedisClient, logger: Logger, files: FilesRuntime? = nil) throws {
        let configuration = try AIProviderConfiguration(environment: environment) ?? .localModelServer()
        provider = try OpenAICompatibleProvider(configuration: configuration)
        var pipelineConfiguration = PipelineConfiguration()
        if let files {
            pipelineConfiguration.ragChunks = files.configuration.ragChunks
            pipelineConfiguration.ragMinimumScore = files.configuration.ragMinimumScore
        }
        pipeline = RoutingPipeline(
            provider: provider, stores: stores, redis: redis, configuration: pipelineConfiguration, logger: logger, search: files?.search)
        indexer = files?.indexer(stores: stores, redis: redis, logger: logger)
        if environment["SB_AI_BASE_URL"] == nil {
            logger.notice("SB_AI_BASE_URL is not set: using the local model server (scripts/llm) at \(configuration.baseURL)")
        }
    }

    func register(in registry: inout JobRegistry, stores: Stores, redis: RedisClient, deliveries: ChannelDeliveries) {
        PipelineJobs.register(in: &registry, pipeline: pipeline, stores: stores, redis: redis, deliveries: deliveries, indexer: indexer)
    }

    func shutdown() async {
        await pipeline.shutdown()
        try? await provider.shutdown()
    }
}
