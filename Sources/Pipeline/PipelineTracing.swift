/// Spans of a turn's pipeline on the worker: one per stage (`pipeline extract`, `pipeline classify`,
/// `pipeline plan`, `pipeline execute`) and one per task node (`task <capability>`), children of the
/// `job turn` span. With tracing off they are swift-distributed-tracing's no-op spans.
import Tracing

enum PipelineTracing {
    /// Runs one stage of the turn of `messageID` in its span; a thrown error is recorded and rethrown.
    static func stage<T>(_ name: String, messageID: Int64, _ body: () async throws -> T) async throws -> T {
        try await withSpan("pipeline \(name)") { span in
            if span.isRecording { span.attributes["switchboard.message.id"] = Int(messageID) }
            return try await body()
        }
    }

    /// Runs one task node in its span; an outcome that `failure` names (a failed or timed-out node)
    /// marks the span as an error.
    static func node<Outcome>(
        _ node: TaskNode, isReply: Bool, _ body: () async -> Outcome, failure: (Outcome) -> String?
    ) async -> Outcome {
        await withSpan("task \(node.capability)") { span in
            if span.isRecording {
                span.attributes["switchboard.task.node"] = node.id
                span.attributes["switchboard.task.capability"] = node.capability
                span.attributes["switchboard.task.reply"] = isReply
            }
            let outcome = await body()
            if let message = failure(outcome) { span.setStatus(SpanStatus(code: .error, message: message)) }
            return outcome
        }
    }
}
