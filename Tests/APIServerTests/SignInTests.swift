@testable import APIServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import RedisClient
import Storage
import SwitchboardCore
import Testing

/// Signing in to the web pages against real Redis and MariaDB: bcrypt passwords, the session
/// cookie, CSRF on changes, the sign-in limits, sign-out and the idle timeout.
@Suite("Sign-in sessions")
struct SignInTests {
    static let password = "correct horse battery"

    /// bcrypt at its lowest cost keeps the tests quick; production uses 12.
    static func web(_ change: (inout WebSettings) -> Void = { _ in }) -> WebSettings {
        var web = WebSettings(bcryptCost: 4)
        change(&web)
        return web
    }

    static func app(_ env: TestEnvironment, web: WebSettings = web()) -> some ApplicationProtocol {
        var dependencies = env.dependencies()
        dependencies.web = web
        return Application(router: APIApplication.buildRouter(dependencies: dependencies), logger: TestEnvironment.logger)
    }

    static func userWithPassword(_ env: TestEnvironment) async throws -> User {
        let (user, _) = try await env.makeUser()
        try await Passwords(stores: env.stores, cost: 4, redis: env.redis).setPassword(email: user.email, password: password)
        return user
    }

    static func login(_ client: some TestClientProtocol, _ email: String, _ password: String) async throws -> TestResponse {
        try await client.execute(
            uri: "/api/v1/auth/login", method: .post, headers: [.contentType: "application/json"],
            body: jsonBody(["email": email, "password": password]))
    }

    /// The session cookie's `name=value` from a sign-in answer.
    static func cookie(_ response: TestResponse) -> String? {
        response.headers[.setCookie].flatMap { $0.split(separator: ";").first.map(String.init) }
    }

    @Test func aRightPasswordOpensAnHttpOnlySessionThatWorksOnAPIRoutes() async throws {
        try await TestEnvironment.with { env in
            let user = try await Self.userWithPassword(env)
            try await Self.app(env).test(.router) { client in
                let response = try await Self.login(client, user.email.uppercased(), Self.password)
                #expect(response.status == .ok)
                let setCookie = try #require(response.headers[.setCookie])
                #expect(setCookie.hasPrefix("sb_session="))
                #expect(setCookie.contains("HttpOnly"))
                #expect(setCookie.contains("SameSite=Lax"))
                #expect(!setCookie.contains("Secure"))
                #expect((response.json["user"] as? [String: Any])?["email"] as? String == user.email)
                let csrf = try #require(response.json["csrfToken"] as? String)
                let cookie = try #require(Self.cookie(response))

                try await client.execute(uri: "/api/v1/auth/session", method: .get, headers: [.cookie: cookie]) { session in
                    #expect(session.status == .ok)
                    #expect(session.json["csrfToken"] as? String == csrf)
                }
                try await client.execute(uri: "/api/v1/me", method: .get, headers: [.cookie: cookie]) { me in
                    #expect(me.status == .ok)
                    #expect(me.json["id"] as? Int == Int(user.id))
                }
                // The cookie holds a token Redis knows only by its hash.
                let token = String(cookie.dropFirst("sb_session=".count))
                #expect(try await env.redis.exists("websession:\(WebSessions.hash(token))"))
                #expect(try await !env.redis.exists("websession:\(token)"))
            }
        }
    }

    @Test func aSecureCookieWhenConfigured() async throws {
        try await TestEnvironment.with { env in
            let user = try await Self.userWithPassword(env)
            try await Self.app(env, web: Self.web { $0.secureCookie = true }).test(.router) { client in
                let response = try await Self.login(client, user.email, Self.password)
                #expect(response.headers[.setCookie]?.contains("; Secure") == true)
            }
        }
    }

    @Test func changesSignedInByCookieNeedTheCSRFTokenAndAPIKeysDoNot() async throws {
        try await TestEnvironment.with { env in
            let user = try await Self.userWithPassword(env)
            let key = try await Accounts(stores: env.stores).createAPIKey(userEmail: user.email).secret
            try await Self.app(env).test(.router) { client in
                let response = try await Self.login(client, user.email, Self.password)
                let csrf = try #require(response.json["csrfToken"] as? String)
                let cookie = try #require(Self.cookie(response))
                let json: HTTPFields = [.cookie: cookie, .contentType: "application/json"]

                for token in [nil, "", String(csrf.reversed())] {
                    var headers = json
                    if let token { headers[WebSessions.csrfHeader] = token }
                    try await client.execute(uri: "/api/v1/chats", method: .post, headers: headers, body: jsonBody(["title": "x"])) { refused in
                        #expect(refused.status == .forbidden)
                        #expect(refused.errorCode == "csrf_failed")
                    }
                }
                try await client.execute(uri: "/api/v1/chats", method: .get, headers: [.cookie: cookie]) { list in
                    #expect((list.json["data"] as? [Any])?.isEmpty == true, "a refused request stored nothing")
                }
                var headers = json
                headers[WebSessions.csrfHeader] = csrf
                try await client.execute(uri: "/api/v1/chats", method: .post, headers: headers, body: jsonBody(["title": "mine"])) { created in
                    #expect(created.status == .created)
                }
                try await client.execute(uri: "/api/v1/chats", method: .post, headers: .auth(key), body: jsonBody(["title": "by key"])) { created in
                    #expect(created.status == .created)
                }
                // The generic webhook's data belongs to an API key.
                try await client.execute(uri: "/api/v1/webhooks/generic/secret", method: .post, headers: headers, body: jsonBody([:])) { refused in
                    #expect(refused.status == .forbidden)
                    #expect(refused.errorCode == "api_key_required")
                }
            }
        }
    }

    @Test func wrongPasswordsUnknownUsersAndUsersWithoutAPasswordAreRefusedAlike() async throws {
        try await TestEnvironment.with { env in
            let user = try await Self.userWithPassword(env)
            let (keyOnly, _) = try await env.makeUser()
            try await Self.app(env).test(.router) { client in
                for (email, password) in [(user.email, "wrong password"), ("nobody@example.com", Self.password), (keyOnly.email, Self.password)] {
                    let response = try await Self.login(client, email, password)
                    #expect(response.status == .unauthorized, "\(email)")
                    #expect(response.errorCode == "invalid_credentials")
                    #expect(response.errorMessage == "wrong email or password")
                    #expect(response.headers[.setCookie] == nil)
                }
                let missing = try await client.execute(
                    uri: "/api/v1/auth/login", method: .post, headers: [.contentType: "application/json"], body: jsonBody(["email": user.email]))
                #expect(missing.status == .badRequest)
                #expect(missing.errorMessage?.hasPrefix("password:") == true)
                let form = try await client.execute(
                    uri: "/api/v1/auth/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                    body: ByteBuffer(string: "email=a&password=b"))
                #expect(form.status == .unsupportedMediaType, "a cross-site form cannot sign anyone in")
                let untyped = try await client.execute(
                    uri: "/api/v1/auth/login", method: .post, body: jsonBody(["email": user.email, "password": Self.password]))
                #expect(untyped.status == .unsupportedMediaType, "a body without a type (a Blob from another site) is refused too")
                // Without a session, the session route is a 401 like any route.
                try await client.execute(uri: "/api/v1/auth/session", method: .get) { #expect($0.status == .unauthorized) }
                try await client.execute(uri: "/api/v1/chats", method: .get, headers: [.cookie: "sb_session=" + String(repeating: "A", count: 43)]) {
                    #expect($0.status == .unauthorized)
                }
            }
        }
    }

    @Test func signInIsLimitedPerAccountAndPerIP() async throws {
        try await TestEnvironment.with { env in
            let user = try await Self.userWithPassword(env)
            let other = try await Self.userWithPassword(env)
            let web = Self.web {
                $0.loginPerAccount = RateLimitRule(limit: 3, period: .seconds(3_600), burst: 3)
                $0.loginPerIP = RateLimitRule(limit: 5, period: .seconds(3_600), burst: 5)
            }
            try await Self.app(env, web: web).test(.router) { client in
                for _ in 0..<3 { #expect(try await Self.login(client, user.email, "wrong password").status == .unauthorized) }
                // The account is locked for now, even with its right password.
                let limited = try await Self.login(client, user.email, Self.password)
                #expect(limited.status == .tooManyRequests)
                #expect(limited.errorCode == "rate_limited")
                #expect(Int(limited.headers[HTTPField.Name("Retry-After")!] ?? "") ?? 0 >= 1)
                #expect(limited.headers[.setCookie] == nil)
                // Another account from the same address: the per-IP budget (5) has one left.
                #expect(try await Self.login(client, other.email, Self.password).status == .ok)
                #expect(try await Self.login(client, other.email, Self.password).status == .tooManyRequests)
            }
        }
    }

    @Test func signingOutEndsTheSessionAndNeedsTheCSRFToken() async throws {
        try await TestEnvironment.with { env in
            let user = try await Self.userWithPassword(env)
            try await Self.app(env).test(.router) { client in
                let response = try await Self.login(client, user.email, Self.password)
                let csrf = try #require(response.json["csrfToken"] as? String)
                let cookie = try #require(Self.cookie(response))
                try await client.execute(uri: "/api/v1/auth/logout", method: .post, headers: [.cookie: cookie]) { refused in
                    #expect(refused.status == .forbidden)
                }
                try await client.execute(
                    uri: "/api/v1/auth/logout", method: .post, headers: [.cookie: cookie, WebSessions.csrfHeader: csrf]
                ) { out in
                    #expect(out.status == .noContent)
                    #expect(out.headers[.setCookie]?.contains("Max-Age=0") == true)
                }
                try await client.execute(uri: "/api/v1/chats", method: .get, headers: [.cookie: cookie]) { after in
                    #expect(after.status == .unauthorized)
                }
            }
        }
    }

    @Test func aSessionEndsAfterItsIdleTimeAndWhenThePasswordChanges() async throws {
        try await TestEnvironment.with { env in
            let user = try await Self.userWithPassword(env)
            try await Self.app(env, web: Self.web { $0.sessionIdleTimeout = .seconds(1) }).test(.router) { client in
                let idle = try #require(Self.cookie(try await Self.login(client, user.email, Self.password)))
                try await Task.sleep(for: .milliseconds(1_500))
                try await client.execute(uri: "/api/v1/me", method: .get, headers: [.cookie: idle]) { #expect($0.status == .unauthorized) }
            }
            try await Self.app(env).test(.router) { client in
                let first = try #require(Self.cookie(try await Self.login(client, user.email, Self.password)))
                let second = try #require(Self.cookie(try await Self.login(client, user.email, Self.password)))
                try await client.execute(uri: "/api/v1/me", method: .get, headers: [.cookie: first]) { #expect($0.status == .ok) }
                try await Passwords(stores: env.stores, cost: 4, redis: env.redis).setPassword(email: user.email, password: "another long password")
                for cookie in [first, second] {
                    try await client.execute(uri: "/api/v1/me", method: .get, headers: [.cookie: cookie]) { #expect($0.status == .unauthorized) }
                }
                #expect(try await Self.login(client, user.email, Self.password).status == .unauthorized)
                #expect(try await Self.login(client, user.email, "another long password").status == .ok)
            }
        }
    }

    @Test func passwordsAreBcryptHashesAndBadOnesAreRefused() async throws {
        try await TestEnvironment.with { env in
            let user = try await Self.userWithPassword(env)
            let stored = try #require(try await env.stores.credentials.credentials(email: user.email)?.passwordHash)
            #expect(stored.hasPrefix("$2b$04$"))
            #expect(!stored.contains(Self.password))
            let passwords = Passwords(stores: env.stores, cost: 4)
            await #expect(throws: Passwords.Failure.tooShort(8)) { try await passwords.setPassword(email: user.email, password: "short") }
            await #expect(throws: Passwords.Failure.tooLong(72)) {
                try await passwords.setPassword(email: user.email, password: String(repeating: "x", count: 73))
            }
            await #expect(throws: Passwords.Failure.noSuchUser("nobody@example.com")) {
                try await passwords.setPassword(email: "nobody@example.com", password: Self.password)
            }
        }
    }
}
