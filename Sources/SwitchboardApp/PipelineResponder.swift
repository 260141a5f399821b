import AIProviders
import Foundation
import Logging
import Pipeline
import RedisClient
import Queue
import Storage
import SwitchboardCore
import Turns

/// Runs the routing pipeline for a turn: pipeline events become turn events, the outcome becomes
/// the stored reply, and the pipeline's typed failures become the turn's `error` event.
struct PipelineResponder: TurnResponder {
    let pipeline: RoutingPipeline

    func respond(to request: TurnRequest, emitter: TurnEmitter) async throws -> TurnReply {
        let sink = EmitterSink(emitter: emitter)
        do {
            let outcome = try await pipeline.run(context: request.context, sink: sink, isRestart: request.isRestart)
            return TurnReply(
                content: outcome.reply,
                topic: outcome.classification.topic,
                language: outcome.classification.language,
                provider: outcome.provider,
                model: outcome.model,
                usage: TurnUsage(promptTokens: outcome.usage.promptTokens, completionTokens: outcome.usage.completionTokens)
            )
        } catch let error as PipelineError {
            throw TurnFailure(code: error.code.rawValue, message: error.message)
        }
    }
}

/// Adapts the pipeline's event sink to the turn stream.
struct EmitterSink: TurnEventSink {
    let emitter: TurnEmitter

    func emit(_ event: PipelineEvent) async throws {
        switch event {
        case .stage(let stage):
            try await emitter.emit(.status(TurnStatus(stage: TurnStatus.Stage(rawValue: stage.rawValue))))
        case .classified(let topic, let language, let source):
            try await emitter.emit(.status(TurnStatus(stage: .classified, topic: topic, language: language, source: source.rawValue)))
        case .plan(let nodes, let replyNode, let fallbackReason):
            try await emitter.emit(.plan(TurnPlan(
                nodes: nodes.map { TurnPlan.Node(id: $0.id, capability: $0.capability, kind: $0.kind) }, replyNode: replyNode,
                fallbackReason: fallbackReason
            )))
        case .taskUpdate(let nodeID, let state, let error):
            guard let mapped = TaskUpdate.State(rawValue: state.rawValue) else { return }
            try await emitter.emit(.taskUpdate(TaskUpdate(nodeID: nodeID, state: mapped, error: error)))
        case .taskChunk(let nodeID, let text):
            try await emitter.emit(.taskChunk(TaskChunk(nodeID: nodeID, text: text)))
        case .chunk(let text):
            try await emitter.emit(.chunk(text))
        }
    }
}

/// `extract` queue: text out of an uploaded file, stored with the file.
struct ExtractJob: JobPayload {
    static let name = "extract_file"
    static let version = 1
    var fileId: Int64
}

/// The jobs a worker runs around the routing pipeline: `turn` answered by `pipeline`,
/// `deliver_reply` through `deliveries`, and `extract_file`. Harnesses that bring their own
/// provider (benchmarks, end-to-end tests) assemble a worker with the same handlers as `serve`.
public enum PipelineJobs {
    public static func register(
        in registry: inout JobRegistry, pipeline: RoutingPipeline, stores: Stores, redis: RedisClient,
        deliveries: ChannelDeliveries = .standard
    ) {
        Turns.register(
            in: &registry,
            dependencies: TurnDependencies(redis: redis, stores: stores, responder: PipelineResponder(pipeline: pipeline), deliveries: deliveries))
        let extraction = FileExtraction(files: stores.files)
        registry.register(ExtractJob.self) { job, _ in
            // A file that cannot be read is a result (stored with the file), not a job failure.
            _ = try await extraction.run(fileID: job.fileId)
        }
    }
}

/// Everything the worker needs to run turns through the pipeline.
final class PipelineRuntime: Sendable {
    let provider: OpenAICompatibleProvider
    let pipeline: RoutingPipeline

    init(environment: [String: String], stores: Stores, redis: RedisClient, logger: Logger) throws {
        let configuration = try AIProviderConfiguration(environment: environment) ?? .localModelServer()
        provider = try OpenAICompatibleProvider(configuration: configuration)
        pipeline = RoutingPipeline(provider: provider, stores: stores, redis: redis, logger: logger)
        if environment["SB_AI_BASE_URL"] == nil {
            logger.notice("SB_AI_BASE_URL is not set: using the local model server (scripts/llm) at \(configuration.baseURL)")
        }
    }

    func register(in registry: inout JobRegistry, stores: Stores, redis: RedisClient) {
        PipelineJobs.register(in: &registry, pipeline: pipeline, stores: stores, redis: redis)
    }

    func shutdown() async {
        await pipeline.shutdown()
        try? await provider.shutdown()
    }
}
