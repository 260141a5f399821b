/// The W3C trace context (`traceparent`, `tracestate`) as plain strings, for what carries a trace
/// between processes without HTTP headers: the job envelope (Queue) and the turn stream (Turns).
/// With tracing off, the no-op instrument writes nothing and reads nothing.
import Instrumentation
import ServiceContextModule
import Tracing

public enum TraceContext {
    public static let traceparent = "traceparent"
    public static let tracestate = "tracestate"

    /// The current span's `traceparent`, nil when no span is recording (tracing off, unsampled
    /// with the no-op instrument, or no span).
    public static func currentTraceparent(_ context: ServiceContext? = ServiceContext.current) -> String? {
        guard let context else { return nil }
        var carrier: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &carrier, using: DictionaryInjector())
        return carrier[traceparent]
    }

    /// A service context continuing the trace of `traceparent` (top level when nil or invalid).
    public static func context(traceparent value: String?) -> ServiceContext {
        var context = ServiceContext.topLevel
        guard let value, !value.isEmpty else { return context }
        InstrumentationSystem.instrument.extract([traceparent: value], into: &context, using: DictionaryExtractor())
        return context
    }
}

struct DictionaryInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
}

struct DictionaryExtractor: Extractor {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
}
