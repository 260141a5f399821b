/// Spans of provider calls (`ai chat`, `ai chat_stream`, `ai embed`), client spans under the
/// pipeline stage or task node that made the call. A stream's span lasts until its last event.
/// With tracing off they are swift-distributed-tracing's no-op spans.
import Tracing

enum ProviderTracing {
    /// Starts the span of one call; the caller ends it (streams end it when their reader stops).
    static func start(_ operation: String, provider: String, model: String) -> any Span {
        let span = startSpan("ai \(operation)", ofKind: .client)
        if span.isRecording {
            span.attributes["gen_ai.system"] = provider
            span.attributes["gen_ai.operation.name"] = operation
            span.attributes["gen_ai.request.model"] = model
        }
        return span
    }

    /// Runs one whole call in its span; a thrown error is recorded and rethrown.
    static func call<T>(_ operation: String, provider: String, model: String, _ body: () async throws -> T) async throws -> T {
        let span = start(operation, provider: provider, model: model)
        defer { span.end() }
        do {
            return try await ServiceContext.withValue(span.context) { try await body() }
        } catch {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error))
            throw error
        }
    }

    /// Ends a stream's span, as an error when the stream failed.
    static func end(_ span: any Span, error: (any Error)?) {
        if let error {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error))
        }
        span.end()
    }
}
