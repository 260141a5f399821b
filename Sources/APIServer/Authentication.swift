import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Storage
import SwitchboardCore

/// Identifies the caller from `Authorization: Bearer sk_...` or `X-API-Key: sk_...`. The key's
/// SHA-256 finds the row (through `APIKeyCache`); the stored hash is compared in constant time
/// before it is trusted.
struct APIKeyAuthenticator: RouterMiddleware {
    typealias Context = APIRequestContext
    static let apiKeyHeader = HTTPField.Name("X-API-Key")!
    /// `last_used_at` is written at most this often per key (not on every request).
    static let touchInterval: TimeInterval = 60

    let apiKeys: any APIKeyStore
    let cache: APIKeyCache

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let presented = Self.presentedKey(request.headers) else {
            throw Self.unauthorized("an API key is required (Authorization: Bearer sk_... or X-API-Key)")
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
