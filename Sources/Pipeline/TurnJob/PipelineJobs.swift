/// The jobs a worker runs around the routing pipeline, registered in one place: `turn` (answered
/// by the pipeline), `deliver_reply` (through the channels' deliverers), `extract_file` and,
/// when the worker can embed, `index_file`.
import Channels
import Files
import Foundation
import Queue
import RedisClient
import Storage
import SwitchboardCore
import Turns

public enum PipelineJobs {
    /// Registers the pipeline's job handlers. `responder` answers turns: the pipeline itself in
    /// every role; harnesses and tests may bring another.
    public static func register(
        in registry: inout JobRegistry, responder: any TurnResponder, stores: Stores, redis: RedisClient,
        deliveries: ChannelDeliveries = .standard, indexer: FileIndexer? = nil
    ) {
        var dependencies = TurnJobDependencies(redis: redis, messages: stores.messages, responder: responder, deliveries: deliveries)
        dependencies.documents = stores.documents
        let runner = TurnRunner(dependencies: dependencies)
        registry.register(TurnJob.self) { job, context in
            try await runner.run(
                messageID: job.messageId, attempt: context.attempt, isLastAttempt: context.attempt >= context.maxAttempts,
                logger: context.logger)
        }
        Deliveries.register(in: &registry, messages: stores.messages, deliveries: deliveries)
        let extraction = FileExtraction(files: stores.files)
        let documents = stores.documents
        let jobs = JobQueue(client: redis)
        registry.register(ExtractJob.self) { job, _ in
            // A file that cannot be read is a result (stored with the file), not a job failure.
            _ = try await documents.setStatus(fileID: job.fileId, to: .extracting, error: nil, from: [.queued, .extracting])
            switch try await extraction.run(fileID: job.fileId) {
            case .success(let text) where text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty:
                _ = try await documents.setStatus(fileID: job.fileId, to: .failed, error: "the file has no text", from: [.extracting])
            case .success:
                // Once per file: a redelivered extract job finds the index job already queued.
                if try await documents.setStatus(fileID: job.fileId, to: .indexing, error: nil, from: [.extracting, .indexing]) {
                    try await jobs.enqueue(
                        IndexJob(fileId: job.fileId), on: IndexJob.queue, options: EnqueueOptions(idempotencyKey: "index:\(job.fileId)"))
                }
            case .failure(let error):
                _ = try await documents.setStatus(fileID: job.fileId, to: .failed, error: error.description, from: nil)
            }
        }
        if let indexer {
            registry.register(IndexJob.self) { job, context in
                _ = try await indexer.run(fileID: job.fileId, isLastAttempt: context.attempt >= context.maxAttempts)
            }
        }
    }

    /// Registers the pipeline's jobs with `pipeline` answering turns.
    public static func register(
        in registry: inout JobRegistry, pipeline: RoutingPipeline, stores: Stores, redis: RedisClient,
        deliveries: ChannelDeliveries = .standard, indexer: FileIndexer? = nil
    ) {
        register(in: &registry, responder: pipeline, stores: stores, redis: redis, deliveries: deliveries, indexer: indexer)
    }
}

extension RoutingPipeline: TurnResponder {
    /// One more than the history the pipeline keeps: an earlier message it cannot use (one still
    /// running, say) does not shorten the history.
    public var earlierMessages: Int { configuration.historyLimit + 1 }

    public func respond(to request: TurnRequest, events: any TurnEventSink) async throws -> TurnOutcome {
        try await run(context: request.context, sink: events, isRestart: request.isRestart)
    }
}
