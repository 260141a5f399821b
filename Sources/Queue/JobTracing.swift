/// Spans around jobs: the producer's `enqueue` span, whose W3C `traceparent` the envelope carries
/// (field `tp`), and the worker's span of one run, which continues that trace in another process.
/// With tracing off these are swift-distributed-tracing's no-op spans and the envelope carries nothing.
import Observability
import Tracing

enum JobTracing {
    /// Runs `body` (which writes the job) in a producer span named `enqueue <job>`; `body` gets the
    /// span's `traceparent` to store in the envelope (nil when nothing records).
    static func enqueue<T>(
        job name: String, queue: QueueName, _ body: (String?) async throws -> T
    ) async throws -> T {
        try await withSpan("enqueue \(name)", ofKind: .producer) { span in
            if span.isRecording {
                span.attributes["messaging.system"] = "redis_streams"
                span.attributes["messaging.destination.name"] = queue.rawValue
                span.attributes["switchboard.job.name"] = name
            }
            return try await body(TraceContext.currentTraceparent())
        }
    }

    /// Runs a job's handler in a consumer span `job <name>`, child of the enqueue's context when the
    /// envelope carries one. Errors are recorded on the span and rethrown.
    static func run(
        _ envelope: JobEnvelope, context: JobContext, _ body: () async throws -> Void
    ) async throws {
        let parent = TraceContext.context(traceparent: envelope.traceparent)
        try await withSpan("job \(envelope.name)", context: parent, ofKind: .consumer) { span in
            if span.isRecording {
                span.attributes["messaging.system"] = "redis_streams"
                span.attributes["messaging.destination.name"] = context.queue.rawValue
                span.attributes["messaging.message.id"] = envelope.id.rawValue
                span.attributes["switchboard.job.name"] = envelope.name
                span.attributes["switchboard.job.attempt"] = context.attempt
                span.attributes["switchboard.worker.id"] = context.workerID
            }
            try await body()
        }
    }
}
