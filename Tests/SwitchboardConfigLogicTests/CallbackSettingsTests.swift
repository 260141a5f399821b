/// `channels.allow_private_callbacks`: off unless the file or SB_CHANNELS_ALLOW_PRIVATE_CALLBACKS
/// turns it on, and a value that is not a boolean is refused naming the key.
import Foundation
import Testing

@testable import SwitchboardConfig

@Suite struct CallbackSettingsTests {
    func settings(_ yaml: String, env: [String: String] = [:]) throws -> Settings {
        try Settings(source: ConfigSource(yaml: yaml, environment: env, aliases: Settings.aliases))
    }

    @Test func privateCallbacksAreRefusedByDefault() throws {
        #expect(try settings("").allowPrivateCallbacks == false)
        let example = SettingsTests.packageRoot.appendingPathComponent("config/switchboard.example.yaml").path
        #expect(try Settings.load(path: example, environment: [:]).allowPrivateCallbacks == false)
    }

    @Test func theFileOrTheEnvironmentAllowsThem() throws {
        #expect(try settings("channels:\n  allow_private_callbacks: true\n").allowPrivateCallbacks)
        #expect(try settings("", env: ["SB_CHANNELS_ALLOW_PRIVATE_CALLBACKS": "true"]).allowPrivateCallbacks)
    }

    @Test func aValueThatIsNotABooleanNamesTheKey() {
        #expect(throws: ConfigError.self) { try settings("channels:\n  allow_private_callbacks: sometimes\n") }
        do {
            _ = try settings("channels:\n  allow_private_callbacks: sometimes\n")
        } catch {
            #expect("\(error)".contains("channels.allow_private_callbacks"))
        }
    }
}
