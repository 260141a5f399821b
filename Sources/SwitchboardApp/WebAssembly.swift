/// The `web.*` settings as the api's `WebSettings` (sign-in sessions, sign-in limits, pages).
import APIServer
import SwitchboardConfig

extension Clients {
    static func web(_ web: Settings.Web) -> WebSettings {
        WebSettings(
            sessionIdleTimeout: .seconds(web.sessionIdleTimeout), sessionLifetime: .seconds(web.sessionLifetime),
            secureCookie: web.secureCookie,
            loginPerIP: RateLimitRule(limit: web.loginPerIPPerMinute, period: .seconds(60), burst: web.loginPerIPBurst),
            loginPerAccount: RateLimitRule(limit: web.loginPerAccountPerMinute, period: .seconds(60), burst: web.loginPerAccountBurst),
            assetsDirectory: web.assetsDirectory, connectSources: web.connectSources, bcryptCost: UInt8(web.bcryptCost))
    }
}
