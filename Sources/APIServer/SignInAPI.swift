import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOPosix
import Storage
import SwitchboardCore

/// Signing in to the web pages: `POST /api/v1/auth/login` checks an email and password (bcrypt)
/// and opens a session (`WebSessions`) held by an HttpOnly cookie; `POST /api/v1/auth/logout`
/// ends it; `GET /api/v1/auth/session` tells the page who is signed in and its CSRF token.
/// Sign-in attempts are limited per client IP and per account before any password is checked.
struct SignInAPI: Sendable {
    let dependencies: APIDependencies
    let limiter: RateLimiter

    init(dependencies: APIDependencies, limiter: RateLimiter) {
        self.dependencies = dependencies
        self.limiter = limiter
        // The decoy hash an unknown email is checked against is made now, not by the first
        // sign-in with an unknown email (whose slower answer would tell that it is unknown).
        let cost = dependencies.web.bcryptCost
        Task.detached { _ = try? await NIOThreadPool.singleton.runIfActive { Passwords.decoyHash(cost: cost) } }
    }

    var sessions: WebSessions { WebSessions(redis: dependencies.redis, settings: dependencies.web) }
    var passwords: Passwords { Passwords(stores: dependencies.stores, cost: dependencies.web.bcryptCost) }

    struct LoginBody: Decodable {
        let email: String
        let password: String
    }

    struct SessionJSON: Encodable {
        let user: UserJSON
        /// Send it as `X-CSRF-Token` on every request that changes something (null for API keys).
        let csrfToken: String?
        /// Seconds without a request after which the session ends.
        let idleTimeout: Int
    }

    /// POST /auth/login
    func login(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        // JSON only, and said so: no cross-site form or script without CORS can send that.
        guard request.headers[.contentType]?.lowercased().contains("application/json") == true else {
            throw SwitchboardError(.unsupportedMediaType, status: 415, "Content-Type must be application/json")
        }
        var request = request
        let body = try await APIJSON.decode(LoginBody.self, from: &request, maxBytes: 16 * 1024)
        let email = body.email.trimmingCharacters(in: .whitespaces).lowercased()
        guard !email.isEmpty, email.count <= 320 else { throw SwitchboardError.invalidField("email", "is required") }
        guard !body.password.isEmpty else { throw SwitchboardError.invalidField("password", "is required") }

        let ip = RateLimitMiddleware.clientIP(
            forwardedFor: request.headers[values: HTTPField.Name("X-Forwarded-For")!], peer: context.remoteAddress?.ipAddress,
            trustedProxies: dependencies.limits.trustedProxies)
        let web = dependencies.web
        for (subject, rule) in [("login:ip:\(ip)", web.loginPerIP), ("login:account:\(WebSessions.hash(email))", web.loginPerAccount)] {
            let decision = try await limiter.check(subject: subject, rule: rule)
            if !decision.allowed {
                let seconds = max(1, RateLimitMiddleware.seconds(decision.retryAfterMilliseconds))
                var response = JSONErrorMiddleware<APIRequestContext>.response(
                    status: 429, code: SwitchboardError.Code.rateLimited.rawValue,
                    message: "too many sign-in attempts; retry in \(seconds) s")
                response.headers[RateLimitMiddleware.retryAfterHeader] = "\(seconds)"
                return response
            }
        }

        guard let user = try await passwords.verify(email: email, password: body.password) else {
            context.logger.notice("sign-in refused", metadata: ["ip": "\(ip)"])
            throw SwitchboardError(.invalidCredentials, status: 401, "wrong email or password")
        }
        let sessions = self.sessions
        if let old = WebSessions.cookie(WebSessions.cookieName, in: request.headers) { try? await sessions.close(token: old) }
        let (token, session) = try await sessions.open(userID: user.id)
        context.logger.info("signed in", metadata: ["user_id": "\(user.id)"])
        return try APIJSON.response(
            SessionJSON(user: UserJSON(user), csrfToken: session.csrfToken, idleTimeout: idleSeconds),
            headers: [.setCookie: sessions.setCookie(token: token), .cacheControl: "no-store"])
    }

    /// POST /auth/logout (signed in: needs the CSRF token like any change).
    func logout(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        _ = try context.requireCaller()
        let sessions = self.sessions
        if let token = WebSessions.cookie(WebSessions.cookieName, in: request.headers) { try await sessions.close(token: token) }
        return Response(status: .noContent, headers: [.setCookie: sessions.clearCookie(), .cacheControl: "no-store"])
    }

    /// GET /auth/session
    func current(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        return try APIJSON.response(
            SessionJSON(user: UserJSON(caller.user), csrfToken: caller.session?.csrfToken, idleTimeout: idleSeconds),
            headers: [.cacheControl: "no-store"])
    }

    var idleSeconds: Int { Int(dependencies.web.sessionIdleTimeout.components.seconds) }
}

extension UserJSON {
    init(_ user: User) {
        self.init(id: user.id, email: user.email, name: user.name, role: user.role.rawValue)
    }
}
