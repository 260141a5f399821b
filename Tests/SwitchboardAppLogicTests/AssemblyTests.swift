import Foundation
import APIServer
import Gateway
import Logging
import SwitchboardConfig
import Testing

@testable import SwitchboardApp

/// The documented example configuration, assembled the way `serve` does it.
@Suite struct AssemblyTests {
    static let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("config/switchboard.example.yaml").path

    @Test func exampleGatewaySectionDecodesWithSwitchboardsNamespaces() throws {
        let settings = try Settings.load(path: Self.example, environment: [
            "SB_GATEWAY_TOKEN_SECRET": "s3cr3t-for-this-test-only", "SB_GATEWAY_PORT": "8123", "SB_GATEWAY_INTERNAL_PORT": "8124",
            "SB_GATEWAY_PREVIOUS_TOKEN_SECRET": "the-secret-before-rotation", "SB_GATEWAY_API_KEY": "api-key-for-this-test",
        ])
        let gateway = try GatewayAssembly.configuration(settings: settings, logger: Logger(label: "test"))
        #expect(Set(gateway.namespaces.map(\.name)) == ["widget", "widgettyping", "user", "system", "admin"])
        #expect(gateway.port == 8123)
        #expect(gateway.internalPort == 8124 && gateway.internalHost == "127.0.0.1")
        #expect(gateway.tokenSecret == "s3cr3t-for-this-test-only")
        #expect(gateway.previousTokenSecret == "the-secret-before-rotation")
        #expect(gateway.apiKey == "api-key-for-this-test")
        let widget = try #require(gateway.namespaces.first { $0.name == "widget" })
        #expect(widget.options.presence)
        #expect(widget.options.historySize == 100)
        #expect(widget.options.historyTTL == 86_400)
    }

    @Test func productionGatewaysRefuseTokensThatNeverExpireUnlessConfigured() throws {
        let production = [
            "SB_ENV": "production", "SB_GATEWAY_TOKEN_SECRET": "Qx7-long-token-signing-value", "SB_GATEWAY_API_KEY": "Kp9-long-gateway-http-api-key",
            "SB_REDIS_URL": "redis://redis.internal:6379/0", "SB_DATABASE_URL": "mariadb://sb:Zt8q-long-db-password@db:3306/sb",
            "SB_SECRETS_KEY": Data(repeating: 3, count: 32).base64EncodedString(),
        ]
        let settings = try Settings.load(path: Self.example, environment: production)
        #expect(try GatewayAssembly.configuration(settings: settings, logger: Logger(label: "test")).requireTokenExpiry)
        let development = try Settings.load(path: Self.example, environment: [:])
        #expect(try !GatewayAssembly.configuration(settings: development, logger: Logger(label: "test")).requireTokenExpiry)
        let optedOut = try Settings(source: ConfigSource(yaml: "gateway:\n  require_token_expiry: false\n", environment: production))
        #expect(try !GatewayAssembly.configuration(settings: optedOut, logger: Logger(label: "test")).requireTokenExpiry)
    }

    /// What compose/compose.yaml gives every role: its mounted file and the production environment.
    @Test func composeConfigurationLoadsInProductionWithTheGatewayNamespaces() throws {
        let composeFile = URL(fileURLWithPath: Self.example).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("compose/switchboard.yaml").path
        let environment = [
            "SB_ENV": "production", "SB_CONFIG": composeFile, "SB_REDIS_URL": "redis://redis:6379/0",
            "SB_DATABASE_URL": "mariadb://switchboard:Zt8q-long-db-password@mariadb:3306/switchboard",
            "SB_GATEWAY_TOKEN_SECRET": "Qx7-long-token-signing-value", "SB_GATEWAY_API_KEY": "Kp9-long-gateway-http-api-key",
            "SB_SECRETS_KEY": Data(repeating: 7, count: 32).base64EncodedString(),
            "SB_AI_BASE_URL": "http://ollama:11434/v1", "SB_AI_MODEL": "llama3.1:8b",
        ]
        let settings = try Settings.load(environment: environment)
        #expect(settings.http.host == "0.0.0.0")
        #expect(settings.worker.healthHost == "0.0.0.0")
        #expect(settings.limits.trustedProxies == 1)
        #expect(settings.startupWaitSeconds == 120)
        #expect(settings.aiEnvironment["SB_AI_BASE_URL"] == "http://ollama:11434/v1")
        let gateway = try GatewayAssembly.configuration(settings: settings, logger: Logger(label: "test"))
        #expect(Set(gateway.namespaces.map(\.name)) == ["widget", "widgettyping", "user", "system", "admin"])
        #expect(gateway.host == "0.0.0.0")
        #expect(gateway.port == 8000)
        #expect(gateway.requireTokenExpiry)
    }

    @Test func missingGatewaySecretsAreRandomPerProcessInDevelopment() throws {
        let settings = try Settings.load(path: Self.example, environment: [:])
        let first = try GatewayAssembly.configuration(settings: settings, logger: Logger(label: "test"))
        let second = try GatewayAssembly.configuration(settings: settings, logger: Logger(label: "test"))
        #expect((first.tokenSecret?.count ?? 0) >= 32)
        #expect(first.tokenSecret != second.tokenSecret)
        #expect(first.apiKey != second.apiKey)
    }

    @Test func aiSectionAndEnvironmentBecomeProviderVariables() throws {
        let source = try ConfigSource(
            yaml: "ai:\n  base_url: http://127.0.0.1:11434/v1\n  model: llama3\n",
            environment: ["SB_AI_MODEL": "qwen2", "SB_AI_EMBED_MODEL": "nomic"], aliases: Settings.aliases
        )
        let settings = try Settings(source: source)
        #expect(settings.aiEnvironment["SB_AI_BASE_URL"] == "http://127.0.0.1:11434/v1")
        #expect(settings.aiEnvironment["SB_AI_MODEL"] == "qwen2")
        #expect(settings.aiEnvironment["SB_AI_EMBED_MODEL"] == "nomic")
    }

    @Test func rateLimitsOfZeroAreDisabled() throws {
        let settings = try Settings(source: ConfigSource(yaml: "limits:\n  per_ip_per_minute: 0\n  per_user_per_minute: 60\n  per_user_burst: 5\n", environment: [:]))
        let limits = Clients.rateLimits(settings.limits)
        #expect(limits.perIP == nil)
        #expect(limits.perUser?.limit == 60)
        #expect(limits.perUser?.burst == 5)
    }
}
