import Logging
import Queue
import RedisClient
import ServiceLifecycle
import SwitchboardConfig

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
        return [WorkerHealthServer(worker: worker, logger: logger), worker]
    }
}
