/// Observability owns how Switchboard is watched: the process-wide swift-log bootstrap (level and
/// format) and the Prometheus registry behind swift-metrics, rendered as text at `/metrics`.
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
    public static func bootstrap(level: Logger.Level) {
        done.withLock { done in
            guard !done else { return }
            done = true
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        }
    }
}
