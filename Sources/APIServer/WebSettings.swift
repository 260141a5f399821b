import Foundation

/// Settings of the web pages and of signing in to them (config keys `web.*`).
public struct WebSettings: Sendable, Equatable {
    /// A sign-in session ends after this long without a request.
    public var sessionIdleTimeout: Duration
    /// … and this long after sign-in at the latest, however busy.
    public var sessionLifetime: Duration
    /// Send the session cookie with `Secure` (only over HTTPS). On in production.
    public var secureCookie: Bool
    /// Sign-in attempts per client IP (per minute, with a burst), failed or not.
    public var loginPerIP: RateLimitRule
    /// Sign-in attempts per account (per email address), failed or not.
    public var loginPerAccount: RateLimitRule
    /// Where the page files are (`web/` of the repository); nil finds it (see `StaticAssets.locate`).
    public var assetsDirectory: String?
    /// Origins besides the page's own that pages may connect to (the realtime gateway's
    /// `ws://host:port` when it listens elsewhere): added to the CSP's `connect-src`.
    public var connectSources: [String]
    /// bcrypt's cost (log2 of its rounds) for new password hashes.
    public var bcryptCost: UInt8

    public init(
        sessionIdleTimeout: Duration = .seconds(1_800), sessionLifetime: Duration = .seconds(86_400), secureCookie: Bool = false,
        loginPerIP: RateLimitRule = RateLimitRule(limit: 20, period: .seconds(60), burst: 10),
        loginPerAccount: RateLimitRule = RateLimitRule(limit: 5, period: .seconds(60), burst: 5),
        assetsDirectory: String? = nil, connectSources: [String] = [], bcryptCost: UInt8 = 12
    ) {
        self.sessionIdleTimeout = sessionIdleTimeout
        self.sessionLifetime = sessionLifetime
        self.secureCookie = secureCookie
        self.loginPerIP = loginPerIP
        self.loginPerAccount = loginPerAccount
        self.assetsDirectory = assetsDirectory
        self.connectSources = connectSources
        self.bcryptCost = bcryptCost
    }
}
