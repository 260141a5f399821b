import Foundation

/// The `tracing` section: OTLP/HTTP trace export (`SB_TRACING_<KEY>` overrides each key; the keys
/// are listed in `Settings.knownKeys`). Off by default: nothing is exported and no tracer is installed.
public struct TracingSettings: Sendable, Equatable {
    /// Export traces at all (`tracing.enabled`).
    public var enabled: Bool
    /// The collector's OTLP/HTTP traces URL (`tracing.endpoint`). A URL without a path gets the
    /// standard `/v1/traces`; without this key, `OTEL_EXPORTER_OTLP_ENDPOINT` (the collector's base
    /// URL, as the OpenTelemetry SDKs read it) and then `http://127.0.0.1:4318` are used.
    public var endpoint: String
    /// The share of new traces recorded, 0…1 (`tracing.sample_ratio`). A trace whose parent came in
    /// with a `traceparent` follows the parent's sampling decision.
    public var sampleRatio: Double
    /// The `service.name` resource attribute (`tracing.service_name`, or `OTEL_SERVICE_NAME`).
    public var serviceName: String

    public static let defaultCollector = "http://127.0.0.1:4318"

    public init(enabled: Bool = false, endpoint: String = defaultCollector + "/v1/traces", sampleRatio: Double = 1, serviceName: String = "switchboard") {
        self.enabled = enabled
        self.endpoint = endpoint
        self.sampleRatio = sampleRatio
        self.serviceName = serviceName
    }

    init(source: ConfigSource) throws {
        enabled = try source.bool("tracing.enabled", default: false)
        let base = try source.optionalString("tracing.endpoint") ?? Self.defaultCollector
        guard let url = URLComponents(string: base), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host?.isEmpty == false else {
            throw ConfigError(key: "tracing.endpoint", "expected http(s)://host[:port][/path] of an OTLP/HTTP collector, got '\(base)'")
        }
        endpoint = Self.tracesURL(base)
        sampleRatio = try source.double("tracing.sample_ratio", default: 1, range: 0...1)
        serviceName = try source.optionalString("tracing.service_name") ?? "switchboard"
    }

    /// `http://collector:4318` → `http://collector:4318/v1/traces`; a URL with a path is kept.
    static func tracesURL(_ base: String) -> String {
        guard let url = URLComponents(string: base), url.path.isEmpty || url.path == "/" else { return base }
        var trimmed = base
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        return trimmed + "/v1/traces"
    }
}
