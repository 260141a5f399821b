/// Observability owns how Switchboard is watched: the process-wide swift-log bootstrap (level and
/// format), the Prometheus registry behind swift-metrics, rendered as text at `/metrics`, and the
/// text builder for the metrics a role renders itself (worker queues, gateway counters).
/// Traces: `TracingSetup.swift` (the OTLP exporter) and `TraceContext.swift` (the W3C context as strings).
import Foundation
import Logging
import Metrics
import Prometheus
import Synchronization

/// The one Prometheus registry of this process. swift-metrics can be bootstrapped only once, so
/// every role in a `serve` process shares it.
public enum MetricsSetup {
    private static let state = Mutex<PrometheusCollectorRegistry?>(nil)

    /// Installs the Prometheus factory as the swift-metrics backend (once) and returns the registry.
    @discardableResult
    public static func bootstrap() -> PrometheusCollectorRegistry {
        state.withLock { registry in
            if let registry { return registry }
            let created = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: created))
            registry = created
            return created
        }
    }

    /// The Prometheus text exposition of everything recorded so far.
    public static func render() -> String {
        var buffer: [UInt8] = []
        bootstrap().emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}

public enum LoggingSetup {
    private static let done = Mutex(false)

    /// Logs go to standard error, one line per event, with metadata such as `hb.request.id`,
    /// `job.id` and `message.id` inline. Safe to call more than once (only the first call counts).
    /// `metadataProvider` adds metadata from the task's context to every line (the trace id of the
    /// current span when tracing is on: `TracingSetup.logMetadataProvider`).
    public static func bootstrap(level: Logger.Level, metadataProvider: Logger.MetadataProvider? = nil) {
        done.withLock { done in
            guard !done else { return }
            done = true
            LoggingSystem.bootstrap({ label, provider in
                var handler = StreamLogHandler.standardError(label: label, metadataProvider: provider)
                handler.logLevel = level
                return handler
            }, metadataProvider: metadataProvider)
        }
    }
}

/// Renders Prometheus text exposition format 0.0.4.
public struct PrometheusText {
    public init() {}

    public private(set) var text = ""

    public mutating func family(_ name: String, _ type: String, _ help: String) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    public mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
        text += name
        if !labels.isEmpty {
            text += "{" + labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",") + "}"
        }
        text += " " + Self.format(value) + "\n"
    }

    public static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    public static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }

}
