/// `web.*`: the sign-in session timings, the cookie's Secure flag (on by default in production),
/// the sign-in limits, from the file or SB_WEB_* variables, and out-of-range values refused.
import Foundation
import Testing

@testable import SwitchboardConfig

@Suite struct WebSettingsTests {
    func settings(_ yaml: String, env: [String: String] = [:]) throws -> Settings {
        try Settings(source: ConfigSource(yaml: yaml, environment: env, aliases: Settings.aliases))
    }

    @Test func defaultsAndTheExampleFile() throws {
        let web = try settings("").web
        #expect(web.sessionIdleTimeout == 1_800)
        #expect(web.sessionLifetime == 86_400)
        #expect(web.secureCookie == false)
        #expect(web.loginPerAccountBurst == 5)
        #expect(web.bcryptCost == 12)
        #expect(web.assetsDirectory == nil)
        let example = SettingsTests.packageRoot.appendingPathComponent("config/switchboard.example.yaml").path
        #expect(try Settings.load(path: example, environment: [:]).web.sessionIdleTimeout == 1_800)
    }

    @Test func theFileAndTheEnvironmentSetThem() throws {
        let web = try settings(
            "web:\n  session_idle_timeout: 600\n  secure_cookie: true\n  connect_sources: [\"ws://a:8000\"]\n",
            env: ["SB_WEB_LOGIN_PER_IP_BURST": "3", "SB_WEB_ASSETS_DIR": "/srv/web"]
        ).web
        #expect(web.sessionIdleTimeout == 600)
        #expect(web.secureCookie)
        #expect(web.connectSources == ["ws://a:8000"])
        #expect(web.loginPerIPBurst == 3)
        #expect(web.assetsDirectory == "/srv/web")
    }

    @Test func outOfRangeValuesNameTheKey() {
        for (yaml, key) in [("web:\n  bcrypt_cost: 3\n", "web.bcrypt_cost"), ("web:\n  session_idle_timeout: 5\n", "web.session_idle_timeout"),
                            ("web:\n  secure_cookie: maybe\n", "web.secure_cookie"), ("web:\n  cookie: x\n", "web.cookie")] {
            do {
                _ = try settings(yaml)
                Issue.record("accepted \(yaml)")
            } catch {
                #expect("\(error)".contains(key), "\(error)")
            }
        }
    }
}
