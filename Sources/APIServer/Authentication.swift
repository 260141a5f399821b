import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Storage
import SwitchboardCore

/// Identifies the caller from `Authorization: Bearer sk_...` or `X-API-Key: sk_...`, else from
/// the web pages' sign-in cookie. The key's SHA-256 finds the row (through `APIKeyCache`); the
/// stored hash is compared in constant time before it is trusted. A request signed in by cookie
/// that changes anything (any method but GET, HEAD, OPTIONS) must also carry the session's
/// `X-CSRF-Token`: a cookie is sent by the browser whoever made the page, the token is not.
struct APIKeyAuthenticator: RouterMiddleware {
    typealias Context = APIRequestContext
    static let apiKeyHeader = HTTPField.Name("X-API-Key")!
    /// `last_used_at` is written at most this often per key (not on every request).
    static let touchInterval: TimeInterval = 60

    let apiKeys: any APIKeyStore
    let cache: APIKeyCache
    /// Sign-in sessions of the web pages (nil: API keys only).
    var sessions: WebSessions? = nil
    var users: (any UserStore)? = nil

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let presented = Self.presentedKey(request.headers) else {
            if let sessions, let users, let token = WebSessions.cookie(WebSessions.cookieName, in: request.headers) {
                return try await signedIn(request, context: context, token: token, sessions: sessions, users: users, next: next)
            }
            throw Self.unauthorized("an API key is required (Authorization: Bearer sk_... or X-API-Key), or a signed-in session")
        }
        guard APIKeySecret.isWellFormed(presented) else { throw Self.unauthorized("the API key is not valid") }
        let hash = APIKeySecret.hash(presented)
        guard let (key, user) = try await cache.activeAPIKey(hash: hash),
              APIKeySecret.constantTimeEquals(key.keyHash, hash)
        else { throw Self.unauthorized("the API key is not valid") }

        if key.lastUsedAt.map({ Date().timeIntervalSince($0) > Self.touchInterval }) ?? true {
            let now = Date()
            if (try? await apiKeys.touchAPIKey(id: key.id, at: now)) != nil { cache.touched(hash: hash, at: now) }
        }
        var context = context
        context.caller = AuthenticatedCaller(user: user, keyID: key.id)
        context.logger[metadataKey: "user_id"] = "\(user.id)"
        return try await next(request, context)
    }

    /// A request carrying the sign-in cookie: the session's user, and its CSRF token when the
    /// request changes anything.
    private func signedIn(
        _ request: Request, context: Context, token: String, sessions: WebSessions, users: any UserStore,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let session = try await sessions.session(token: token), let user = try await users.user(id: session.userID) else {
            throw Self.unauthorized("the session has ended; sign in again")
        }
        let reads: [HTTPRequest.Method] = [.get, .head, .options]
        if !reads.contains(request.method) {
            guard let presented = request.headers[WebSessions.csrfHeader],
                  APIKeySecret.constantTimeEquals(presented, session.csrfToken)
            else {
                throw SwitchboardError(.csrfFailed, status: 403, "a request signed in by cookie must carry the session's X-CSRF-Token")
            }
        }
        var context = context
        context.caller = AuthenticatedCaller(user: user, keyID: 0, session: session)
        context.logger[metadataKey: "user_id"] = "\(user.id)"
        return try await next(request, context)
    }

    static func presentedKey(_ headers: HTTPFields) -> String? {
        if let authorization = headers[.authorization] {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                return parts[1].trimmingCharacters(in: .whitespaces)
            }
            return nil
        }
        return headers[apiKeyHeader]?.trimmingCharacters(in: .whitespaces)
    }

    static func unauthorized(_ message: String) -> HTTPError {
        HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer"], message: message)
    }
}

extension SwitchboardError.Code {
    /// A cookie-signed request that changes something came without the session's CSRF token.
    static let csrfFailed: Self = "csrf_failed"
    /// Wrong email or password at sign-in.
    static let invalidCredentials: Self = "invalid_credentials"
    /// A route tied to an API key (a generic webhook's signing secret) was called from a session.
    static let apiKeyRequired: Self = "api_key_required"
}

extension APIRequestContext {
    /// The caller's API key id; routes whose data belongs to a key refuse a signed-in session.
    func requireAPIKeyID() throws -> Int64 {
        let caller = try requireCaller()
        guard caller.session == nil else {
            throw SwitchboardError(.apiKeyRequired, status: 403, "this route belongs to an API key; call it with one, not a signed-in session")
        }
        return caller.keyID
    }
}
