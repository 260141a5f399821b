/// Tracing's process-wide bootstrap: with tracing on, swift-otel's tracer (OTLP/HTTP protobuf
/// export, parent-based ratio sampling, W3C trace context) becomes swift-distributed-tracing's
/// instrument, and its exporter is a `Service` the role's `ServiceGroup` runs and drains on
/// shutdown. With tracing off nothing is installed: spans go to swift-distributed-tracing's
/// `NoOpTracer` and no trace context is written anywhere.
import Foundation
import Instrumentation
import Logging
import OTel
import ServiceLifecycle
import Synchronization
import Tracing

/// What the tracing bootstrap needs (read from `Settings.tracing` by the app).
public struct TracingConfiguration: Sendable, Equatable {
    public var enabled: Bool
    /// The collector's OTLP/HTTP traces URL (`…/v1/traces`).
    public var endpoint: String
    /// The share of new traces recorded, 0…1; a trace continued from a `traceparent` follows its parent.
    public var sampleRatio: Double
    public var serviceName: String
    /// `service.instance.id`: tells the processes of one trace apart (role, host, pid by default).
    public var instanceID: String
    /// Extra resource attributes (`switchboard.roles`).
    public var resourceAttributes: [String: String]

    public init(
        enabled: Bool, endpoint: String, sampleRatio: Double, serviceName: String, instanceID: String,
        resourceAttributes: [String: String] = [:]
    ) {
        self.enabled = enabled
        self.endpoint = endpoint
        self.sampleRatio = sampleRatio
        self.serviceName = serviceName
        self.instanceID = instanceID
        self.resourceAttributes = resourceAttributes
    }

    /// `<roles>@<host>:<pid>`, unique per process.
    public static func defaultInstanceID(roles: String) -> String {
        "\(roles)@\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)"
    }
}

public enum TracingSetup {
    private static let installed = Mutex(false)

    /// True once an exporting tracer was installed in this process.
    public static var isInstalled: Bool { installed.withLock { $0 } }

    /// With tracing on: installs the OTLP tracer (once per process) and returns the exporter's
    /// service, to run first in the role's `ServiceGroup` (so it shuts down last and flushes the
    /// spans of the drained work). With tracing off, or when already installed: nil, nothing installed.
    public static func bootstrap(_ configuration: TracingConfiguration, logger: Logger) throws -> (any Service)? {
        guard configuration.enabled else { return nil }
        return try installed.withLock { installed -> (any Service)? in
            guard !installed else { return nil }
            var otel = OTel.Configuration.default
            otel.serviceName = configuration.serviceName
            otel.resourceAttributes = configuration.resourceAttributes.merging(
                ["service.instance.id": configuration.instanceID]) { _, new in new }
            otel.diagnosticLogger = .custom(logger)
            otel.propagators = [.traceContext]
            otel.metrics.enabled = false
            otel.logs.enabled = false
            otel.traces.enabled = true
            otel.traces.exporter = .otlp
            otel.traces.otlpExporter.protocol = .httpProtobuf
            otel.traces.otlpExporter.endpoint = configuration.endpoint
            guard let sampler = OTel.Configuration.TracesConfiguration.SamplerConfiguration.parentBasedTraceIDRatio(ratio: configuration.sampleRatio) else {
                throw TracingSetupError(message: "sample ratio \(configuration.sampleRatio) is not within 0...1")
            }
            otel.traces.sampler = sampler
            let (tracer, service) = try OTel.makeTracingBackend(configuration: otel)
            InstrumentationSystem.bootstrap(tracer)
            installed = true
            logger.info("tracing on", metadata: [
                "endpoint": "\(configuration.endpoint)", "sample_ratio": "\(configuration.sampleRatio)",
                "service_instance": "\(configuration.instanceID)",
            ])
            return service
        }
    }

    /// The swift-log metadata provider that adds `trace_id` and `span_id` to a log line written
    /// while a sampled span is current (for `LoggingSetup.bootstrap`).
    public static var logMetadataProvider: Logger.MetadataProvider { OTel.makeLoggingMetadataProvider() }
}

public struct TracingSetupError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
