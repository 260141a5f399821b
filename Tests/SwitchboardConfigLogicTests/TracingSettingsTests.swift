/// `tracing.*`: off by default; the file, SB_TRACING_* and the OpenTelemetry variables set the
/// collector; a collector URL without a path gets `/v1/traces`; bad values name their key.
import Foundation
import Testing

@testable import SwitchboardConfig

@Suite struct TracingSettingsTests {
    func settings(_ yaml: String, env: [String: String] = [:]) throws -> Settings {
        try Settings(source: ConfigSource(yaml: yaml, environment: env, aliases: Settings.aliases))
    }

    @Test func tracingIsOffByDefault() throws {
        let tracing = try settings("").tracing
        #expect(tracing == TracingSettings())
        #expect(!tracing.enabled)
        #expect(tracing.endpoint == "http://127.0.0.1:4318/v1/traces")
        #expect(tracing.sampleRatio == 1)
        #expect(tracing.serviceName == "switchboard")
        let example = SettingsTests.packageRoot.appendingPathComponent("config/switchboard.example.yaml").path
        #expect(try Settings.load(path: example, environment: [:]).tracing == TracingSettings())
    }

    @Test func theFileAndTheEnvironmentSetIt() throws {
        let file = try settings("tracing:\n  enabled: true\n  endpoint: http://collector:4318/\n  sample_ratio: 0.25\n  service_name: sb\n").tracing
        #expect(file == TracingSettings(enabled: true, endpoint: "http://collector:4318/v1/traces", sampleRatio: 0.25, serviceName: "sb"))
        let env = try settings("", env: [
            "SB_TRACING_ENABLED": "true", "SB_TRACING_ENDPOINT": "https://otel.example.net/custom/traces", "SB_TRACING_SAMPLE_RATIO": "0",
        ]).tracing
        #expect(env.enabled)
        #expect(env.endpoint == "https://otel.example.net/custom/traces")
        #expect(env.sampleRatio == 0)
    }

    @Test func theOpenTelemetryVariablesAreHonoured() throws {
        let tracing = try settings("", env: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318", "OTEL_SERVICE_NAME": "edge"]).tracing
        #expect(tracing.endpoint == "http://otel:4318/v1/traces")
        #expect(tracing.serviceName == "edge")
        // Switchboard's own variable wins.
        #expect(try settings("", env: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318", "SB_TRACING_ENDPOINT": "http://mine:4318"])
            .tracing.endpoint == "http://mine:4318/v1/traces")
    }

    @Test func badValuesNameTheirKey() {
        for (yaml, key) in [
            ("tracing:\n  sample_ratio: 1.5\n", "tracing.sample_ratio"),
            ("tracing:\n  endpoint: grpc://collector:4317\n", "tracing.endpoint"),
            ("tracing:\n  enabled: maybe\n", "tracing.enabled"),
            ("tracing:\n  exporter: zipkin\n", "tracing.exporter"),
        ] {
            do {
                _ = try settings(yaml)
                Issue.record("\(key) accepted")
            } catch {
                #expect("\(error)".contains(key))
            }
        }
    }
}
