/// Tracing for a role: `Settings.tracing` → the OTLP exporter's service (nil when tracing is off).
import Logging
import Observability
import ServiceLifecycle
import SwitchboardConfig

enum TracingAssembly {
    static func configuration(settings: Settings, roles: String) -> TracingConfiguration {
        TracingConfiguration(
            enabled: settings.tracing.enabled, endpoint: settings.tracing.endpoint, sampleRatio: settings.tracing.sampleRatio,
            serviceName: settings.tracing.serviceName, instanceID: TracingConfiguration.defaultInstanceID(roles: roles),
            resourceAttributes: ["switchboard.roles": roles, "deployment.environment": settings.environment.rawValue])
    }

    static func bootstrap(settings: Settings, roles: String, logger: Logger) throws -> (any Service)? {
        try TracingSetup.bootstrap(configuration(settings: settings, roles: roles), logger: logger)
    }
}
