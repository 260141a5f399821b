import Crypto
import Foundation
import HTTPTypes
import RedisClient
import SwitchboardCore

/// Sign-in sessions of the web pages, kept in Redis so every api node knows them. The browser
/// holds a random token in an HttpOnly cookie; Redis holds only the token's SHA-256
/// (`websession:{sha256}` → `{u: userId, c: csrfToken, t: signedInAtMs}`), so a copy of Redis
/// signs nobody in. A session ends on sign-out, after `sessionIdleTimeout` without a request
/// (each request pushes its expiry back) and `sessionLifetime` after sign-in at the latest.
/// `websessions:user:{id}` lists a user's sessions, so a password change ends them all.
public struct WebSessions: Sendable {
    public static let cookieName = "sb_session"
    public static let csrfHeader = HTTPField.Name("X-CSRF-Token")!

    /// An open session: whose it is and the token state-changing requests must carry.
    public struct Session: Sendable, Equatable {
        public var userID: Int64
        public var csrfToken: String
    }

    let redis: RedisClient
    let settings: WebSettings

    public init(redis: RedisClient, settings: WebSettings) {
        self.redis = redis
        self.settings = settings
    }

    private struct Stored: Codable {
        var u: Int64
        var c: String
        var t: Int64
    }

    /// Opens a session for `userID`; answers the cookie token (never stored) and the session.
    func open(userID: Int64) async throws -> (token: String, session: Session) {
        let token = Self.randomToken()
        let session = Session(userID: userID, csrfToken: Self.randomToken())
        let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
        let value = String(decoding: try JSONEncoder().encode(Stored(u: userID, c: session.csrfToken, t: nowMs)), as: UTF8.self)
        _ = try await redis.evalScript(
            Self.openScript, keys: [Self.key(token), Self.userKey(userID)],
            args: [value, Self.milliseconds(settings.sessionIdleTimeout), Self.milliseconds(settings.sessionLifetime), Self.hash(token)])
        return (token, session)
    }

    /// The session of `token`, its idle expiry pushed back; nil when there is none (never was,
    /// signed out, idle too long or past its lifetime).
    func session(token: String) async throws -> Session? {
        guard Self.isWellFormed(token) else { return nil }
        let reply = try await redis.evalScript(
            Self.touchScript, keys: [Self.key(token)],
            args: [Self.milliseconds(settings.sessionIdleTimeout), Self.milliseconds(settings.sessionLifetime)])
        guard let bytes = reply.bytes, let stored = try? JSONDecoder().decode(Stored.self, from: Data(bytes)) else { return nil }
        return Session(userID: stored.u, csrfToken: stored.c)
    }

    /// Ends the session of `token` (sign-out).
    func close(token: String) async throws {
        guard Self.isWellFormed(token) else { return }
        _ = try await redis.del(Self.key(token))
    }

    /// Ends every session of the user (a changed password).
    public func endAll(userID: Int64) async throws {
        _ = try await redis.evalScript(Self.endAllScript, keys: [Self.userKey(userID)], args: [redis.key("websession:")])
    }

    // KEYS: session, user's set. ARGV: value, idle ms, lifetime ms, token hash.
    static let openScript = RedisScript("""
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
        redis.call('SADD', KEYS[2], ARGV[4])
        redis.call('PEXPIRE', KEYS[2], ARGV[3])
        return 1
        """)

    // KEYS: session. ARGV: idle ms, lifetime ms. The session's value, or nil (deleted when past its lifetime).
    static let touchScript = RedisScript("""
        local value = redis.call('GET', KEYS[1])
        if not value then return false end
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local started = tonumber(string.match(value, '"t":(%d+)') or '0')
        local left = started + tonumber(ARGV[2]) - now
        if left <= 0 then
          redis.call('DEL', KEYS[1])
          return false
        end
        redis.call('PEXPIRE', KEYS[1], math.min(tonumber(ARGV[1]), left))
        return value
        """)

    // KEYS: the user's set. ARGV: the session key prefix.
    static let endAllScript = RedisScript("""
        local members = redis.call('SMEMBERS', KEYS[1])
        for _, hash in ipairs(members) do redis.call('DEL', ARGV[1] .. hash) end
        redis.call('DEL', KEYS[1])
        return #members
        """)

    static func key(_ token: String) -> String { "websession:\(hash(token))" }
    static func userKey(_ userID: Int64) -> String { "websessions:user:\(userID)" }

    static func hash(_ token: String) -> String { APIKeySecret.hex(Array(SHA256.hash(data: Array(token.utf8)))) }

    /// 32 random bytes, URL-safe base64 without padding (43 characters).
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func isWellFormed(_ token: String) -> Bool {
        token.utf8.count == 43 && token.utf8.allSatisfy { $0.isASCIIAlphanumeric || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }
    }

    static func milliseconds(_ duration: Duration) -> Int {
        Int(duration.components.seconds) * 1000 + Int(duration.components.attoseconds / 1_000_000_000_000_000)
    }

    // MARK: - Cookies

    /// The value of cookie `name` in the request's `Cookie` headers.
    static func cookie(_ name: String, in headers: HTTPFields) -> String? { cookie(name, lines: headers[values: .cookie]) }

    static func cookie(_ name: String, lines: [String]) -> String? {
        for line in lines {
            for pair in line.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == name {
                    return parts[1].trimmingCharacters(in: .whitespaces)
                }
            }
        }
        return nil
    }

    /// `Set-Cookie` for a new session (lives no longer than the session can).
    func setCookie(token: String) -> String { Self.setCookie(token: token, settings: settings) }

    static func setCookie(token: String, settings: WebSettings) -> String {
        "\(cookieName)=\(token); Path=/; Max-Age=\(Int(settings.sessionLifetime.components.seconds)); HttpOnly; SameSite=Lax"
            + (settings.secureCookie ? "; Secure" : "")
    }

    /// `Set-Cookie` that removes the cookie.
    func clearCookie() -> String { Self.clearCookie(settings: settings) }

    static func clearCookie(settings: WebSettings) -> String {
        "\(cookieName)=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax" + (settings.secureCookie ? "; Secure" : "")
    }
}

extension UInt8 {
    fileprivate var isASCIIAlphanumeric: Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(self) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(self)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self)
    }
}
