import Foundation
import Testing

@testable import SwitchboardConfig

@Suite struct SettingsTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func settings(_ yaml: String, env: [String: String] = [:]) throws -> Settings {
        try Settings(source: ConfigSource(yaml: yaml, environment: env, aliases: Settings.aliases))
    }

    func configError(_ yaml: String, env: [String: String] = [:]) -> ConfigError? {
        do {
            _ = try settings(yaml, env: env)
            return nil
        } catch let error as ConfigError {
            return error
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    @Test func exampleFileLoadsWithTheDocumentedValues() throws {
        let path = Self.packageRoot.appendingPathComponent("config/switchboard.example.yaml").path
        let loaded = try Settings.load(path: path, environment: [:])
        #expect(loaded.environment == .development)
        #expect(loaded.http.port == 8080)
        #expect(loaded.redis.url == "redis://127.0.0.1:6380/0")
        #expect(loaded.redis.keyPrefix == "sb:")
        #expect(try settings("").redis.keyPrefix == nil)
        #expect(loaded.database.poolSize == 8)
        #expect(loaded.worker.queues == ["ai", "extract", "index", "delivery"])
        #expect(loaded.worker.healthPort == 9000)
        #expect(loaded.worker.id == nil)
    }

    /// A mapping key that is a list or a mapping traps inside Yams's `load`; libFuzzer found one
    /// (Fuzz/corpus/configuration/non-scalar-key.yaml). It is a ConfigError naming where it is.
    @Test func aKeyThatIsNotAStringIsAConfigErrorNotACrash() throws {
        #expect(configError("? [a, b]\n: 1\n")?.key == "<config>")
        #expect(configError("gateway:\n  {a: 1}: x\n")?.key == "gateway")
        #expect(configError("http:\n  port: 8080\n  list:\n    - ? [x]\n      : y\n")?.key == "http.list")
        let bytes = try Data(contentsOf: Self.packageRoot.appendingPathComponent("Fuzz/corpus/configuration/non-scalar-key.yaml"))
        let found = String(decoding: bytes, as: UTF8.self)
        #expect(configError(found) != nil)
    }

    /// libFuzzer found a key that names nothing (a tag without a name, Fuzz/corpus/configuration/
    /// tagged-empty-key.yaml); it was refused as an unknown setting called ''. It is refused
    /// naming the mapping it is in.
    @Test func anEmptyKeyIsRefusedNamingItsMapping() throws {
        let bytes = try Data(contentsOf: Self.packageRoot.appendingPathComponent("Fuzz/corpus/configuration/tagged-empty-key.yaml"))
        #expect(configError(String(decoding: bytes, as: UTF8.self))?.key == "<config>")
        #expect(configError("http:\n  \"\": 1\n")?.key == "http")
        #expect(configError("gateway:\n  !t : x\n")?.key == "gateway")
    }

    @Test func environmentOverridesTheFile() throws {
        let loaded = try settings(
            "http:\n  port: 8080\nredis:\n  url: redis://127.0.0.1:6380/0\n",
            env: ["SB_HTTP_PORT": "9123", "SB_REDIS_URL": "redis://10.0.0.5:6379/2", "WORKER_CONCURRENCY": "3", "SB_WORKER_QUEUES": "ai, delivery"]
        )
        #expect(loaded.http.port == 9123)
        #expect(loaded.redis.url == "redis://10.0.0.5:6379/2")
        #expect(loaded.worker.concurrency == 3)
        #expect(loaded.worker.queues == ["ai", "delivery"])
    }

    @Test func emptyConfigurationUsesDefaults() throws {
        let loaded = try settings("")
        #expect(loaded.http.host == "127.0.0.1")
        #expect(loaded.database.migrateOnStart)
        #expect(loaded.gatewayPort == 8000)
    }

    @Test func internalListenersDefaultToLoopbackAndAreOverridable() throws {
        let defaults = try settings("")
        #expect(defaults.http.internalHost == "127.0.0.1" && defaults.http.internalPort == 8081)
        #expect(defaults.gatewayInternalHost == "127.0.0.1" && defaults.gatewayInternalPort == 8001)
        let fromFile = try settings("http:\n  internal_host: 0.0.0.0\n  internal_port: 9181\ngateway:\n  internal_port: 9101\n")
        #expect(fromFile.http.internalHost == "0.0.0.0" && fromFile.http.internalPort == 9181)
        #expect(fromFile.gatewayInternalPort == 9101)
        let fromEnvironment = try settings("", env: [
            "SB_HTTP_INTERNAL_PORT": "7081", "SB_GATEWAY_INTERNAL_HOST": "10.0.0.2", "SB_GATEWAY_INTERNAL_PORT": "7001",
        ])
        #expect(fromEnvironment.http.internalPort == 7081)
        #expect(fromEnvironment.gatewayInternalHost == "10.0.0.2" && fromEnvironment.gatewayInternalPort == 7001)
        #expect(configError("", env: ["SB_GATEWAY_INTERNAL_PORT": "70000"])?.key == "gateway.internal_port")
    }

    @Test func startupWaitDefaultsToAMinuteAndIsOverridable() throws {
        #expect(try settings("").startupWaitSeconds == 60)
        #expect(try settings("startup:\n  wait_seconds: 5\n").startupWaitSeconds == 5)
        #expect(try settings("startup:\n  wait_seconds: 5\n", env: ["SB_STARTUP_WAIT_SECONDS": "0"]).startupWaitSeconds == 0)
        let path = Self.packageRoot.appendingPathComponent("config/switchboard.example.yaml").path
        #expect(try Settings.load(path: path, environment: [:]).startupWaitSeconds == 60)
    }

    @Test(arguments: [
        ("startup:\n  wait_seconds: -1\n", [String: String](), "startup.wait_seconds"),
        ("", ["SB_STARTUP_WAIT_SECONDS": "soon"], "startup.wait_seconds"),
        ("startup:\n  wait_secs: 5\n", [:], "startup.wait_secs"),
        ("http:\n  port: eighty\n", [:], "http.port"),
        ("http:\n  port: 70000\n", [:], "http.port"),
        ("", ["SB_HTTP_PORT": "-1"], "http.port"),
        ("database:\n  migrate_on_start: perhaps\n", [:], "database.migrate_on_start"),
        ("redis:\n  url: http://example.com\n", [:], "redis.url"),
        ("database:\n  url: postgres://u:p@h/db\n", [:], "database.url"),
        ("database:\n  url: mariadb://u:p@127.0.0.1:3307\n", [:], "database.url"),
        ("worker:\n  queues: [ai, smtp]\n", [:], "worker.queues"),
        ("htpp:\n  port: 80\n", [:], "htpp.port"),
        ("environment: staging\n", [:], "environment"),
        ("log_level: loud\n", [:], "log_level"),
    ])
    func invalidValuesNameTheirKey(yaml: String, env: [String: String], key: String) {
        let error = configError(yaml, env: env)
        #expect(error?.key == key)
    }

    @Test func errorMessageNamesTheEnvironmentVariable() {
        let error = configError("", env: ["SB_HTTP_PORT": "x"])
        #expect(error?.description.contains("SB_HTTP_PORT") == true)
        #expect(error?.description.contains("'x'") == true)
    }

    @Test func productionRefusesPlaceholderSecrets() {
        let base = """
            environment: production
            redis:
              url: redis://redis.internal:6379/0
            database:
              url: mariadb://sb:Zt8q-long-db-password@db.internal:3306/switchboard
            gateway:
              token_secret: \(String(repeating: "k", count: 40))
              api_key: \(String(repeating: "a", count: 32))
            secrets:
              key: \(Data(repeating: 9, count: 32).base64EncodedString())
            """
        #expect(configError(base) == nil)
        // Channel secrets need their own key in production, and a key must be 32 bytes.
        let withoutKey = base.components(separatedBy: "\nsecrets:")[0]
        #expect(configError(withoutKey)?.key == "secrets.key")
        #expect(configError(base, env: ["SB_SECRETS_KEY": Data(repeating: 9, count: 16).base64EncodedString()])?.key == "secrets.key")
        #expect(configError(withoutKey, env: ["SB_SECRETS_KEY": Data(repeating: 9, count: 32).base64EncodedString()]) == nil)
        #expect(configError(base.replacingOccurrences(of: String(repeating: "k", count: 40), with: "change-me-please-change-me"))?.key == "gateway.token_secret")
        #expect(configError(base.replacingOccurrences(of: String(repeating: "a", count: 32), with: "short"))?.key == "gateway.api_key")
        #expect(configError(base.replacingOccurrences(of: "Zt8q-long-db-password", with: "switchboard"))?.key == "database.url")
        #expect(configError(base, env: ["SB_REDIS_URL": Settings.developmentRedisURL])?.key == "redis.url")
        // Missing secrets are refused too, not defaulted.
        #expect(configError("environment: production\nredis:\n  url: redis://r:6379/0\ndatabase:\n  url: mariadb://sb:Zt8q-long-db-password@db:3306/sb\n")?.key == "gateway.token_secret")
        // The same placeholders are fine on a developer's machine.
        #expect(configError(base.replacingOccurrences(of: "environment: production", with: "environment: development").replacingOccurrences(of: String(repeating: "k", count: 40), with: "change-me")) == nil)
    }

    @Test func environmentSelectsProductionThroughSBENV() {
        #expect(configError("", env: ["SB_ENV": "production"]) != nil)
    }

    @Test func gatewaySectionIsKeptForItsOwner() throws {
        let loaded = try settings("gateway:\n  port: 8100\n  namespaces:\n    - name: widget\n      presence: true\n")
        #expect(loaded.gatewayPort == 8100)
        let json = try #require(loaded.gatewaySection).jsonData()
        let object = try JSONSerialization.jsonObject(with: json) as? [String: Any]
        let namespaces = object?["namespaces"] as? [[String: Any]]
        #expect(namespaces?.first?["name"] as? String == "widget")
        #expect(namespaces?.first?["presence"] as? Bool == true)
    }

    @Test func redactedURLHidesThePassword() {
        #expect(Settings.redactedURL("mariadb://sb:hunter2@db:3306/x") == "mariadb://sb:***@db:3306/x")
    }
}
