/// The jobs a worker runs around the routing pipeline, registered in one place: `turn` (answered
/// by the pipeline), `deliver_reply` (through the channels' deliverers) and `extract_file`.
import Channels
import Foundation
import Queue
import RedisClient
import Storage
import Turns

/// `extract` queue: text out of an uploaded file, stored with the file.
public struct ExtractJob: JobPayload, Equatable {
    public static let name = "extract_file"
    public static let version = 1
    public var fileId: Int64

    public init(fileId: Int64) { self.fileId = fileId }
}

public enum PipelineJobs {
    /// Registers the pipeline's job handlers. `responder` answers turns: the pipeline itself in
    /// every role; harnesses and tests may bring another.
    public static func register(
        in registry: inout JobRegistry, responder: any TurnResponder, stores: Stores, redis: RedisClient,
        deliveries: ChannelDeliveries = .standard
    ) {
        let runner = TurnRunner(dependencies: TurnJobDependencies(
            redis: redis, messages: stores.messages, responder: responder, deliveries: deliveries))
        registry.register(TurnJob.self) { job, context in
            try await runner.run(
                messageID: job.messageId, attempt: context.attempt, isLastAttempt: context.attempt >= context.maxAttempts,
                logger: context.logger)
        }
        Deliveries.register(in: &registry, messages: stores.messages, deliveries: deliveries)
        let extraction = FileExtraction(files: stores.files)
        registry.register(ExtractJob.self) { job, _ in
            // A file that cannot be read is a result (stored with the file), not a job failure.
            _ = try await extraction.run(fileID: job.fileId)
        }
    }

    /// Registers the pipeline's jobs with `pipeline` answering turns.
    public static func register(
        in registry: inout JobRegistry, pipeline: RoutingPipeline, stores: Stores, redis: RedisClient,
        deliveries: ChannelDeliveries = .standard
    ) {
        register(in: &registry, responder: pipeline, stores: stores, redis: redis, deliveries: deliveries)
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
