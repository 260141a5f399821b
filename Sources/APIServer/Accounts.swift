import Crypto
import Foundation
import RedisClient
import Storage
import SwitchboardCore

/// API key secrets: `sk_` followed by 48 hex characters (192 random bits). Only the SHA-256 of a
/// key is stored, so a database leak does not leak usable keys.
public enum APIKeySecret {
    public static let scheme = "sk_"

    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<24).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return scheme + hex(bytes)
    }

    /// Lower-case hex SHA-256 of the key.
    public static func hash(_ key: String) -> String { hex(Array(SHA256.hash(data: Array(key.utf8)))) }

    /// The part of a key shown in listings to recognise it by.
    public static func displayPrefix(_ key: String) -> String { String(key.prefix(scheme.count + 6)) }

    /// Plausible shape check before any database work.
    public static func isWellFormed(_ key: String) -> Bool {
        key.hasPrefix(scheme) && key.utf8.count <= 128 && key.utf8.count > scheme.count
    }

    /// Equality whose time depends only on the length, not on where the inputs first differ.
    public static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<x.count { difference |= x[i] ^ y[i] }
        return difference == 0
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Administration of users and API keys (behind `switchboard users` / `switchboard keys`).
public struct Accounts: Sendable {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case invalidEmail(String)
        case userExists(String)
        case noSuchUser(String)

        public var description: String {
            switch self {
            case .invalidEmail(let email): "not an email address: \(email)"
            case .userExists(let email): "a user with email \(email) exists already"
            case .noSuchUser(let email): "no user with email \(email)"
            }
        }
    }

    /// A new key: `secret` is shown once and never stored.
    public struct CreatedKey: Sendable {
        public var key: APIKey
        public var secret: String
    }

    let users: any UserStore
    let apiKeys: any APIKeyStore
    let quotas: any QuotaStore
    /// Where key changes are announced to the api nodes' caches (`APIKeyCache`).
    let redis: RedisClient?

    /// Without `redis`, a revocation reaches api nodes only when their cached entries expire.
    public init(stores: Stores, redis: RedisClient? = nil) {
        quotas = stores.quotas
        users = stores.users
        apiKeys = stores.apiKeys
        self.redis = redis
    }

    /// Sets the user's own quotas (nil keeps the configured default for that one, 0 means none).
    public func setQuota(email: String, limits: QuotaLimits) async throws {
        let email = email.trimmingCharacters(in: .whitespaces).lowercased()
        guard let user = try await users.user(email: email) else { throw Failure.noSuchUser(email) }
        try await quotas.setQuota(userID: user.id, limits: limits)
    }

    public func createUser(email: String, name: String? = nil, role: User.Role = .user) async throws -> User {
        let email = email.trimmingCharacters(in: .whitespaces).lowercased()
        guard Self.isPlausibleEmail(email) else { throw Failure.invalidEmail(email) }
        if try await users.user(email: email) != nil { throw Failure.userExists(email) }
        do {
            return try await users.createUser(email: email, name: name ?? String(email.prefix { $0 != "@" }), role: role)
        } catch let error as DatabaseError where error.code == .duplicateKey {
            throw Failure.userExists(email)
        }
    }

    public func createAPIKey(userEmail: String, name: String = "default") async throws -> CreatedKey {
        let email = userEmail.trimmingCharacters(in: .whitespaces).lowercased()
        guard let user = try await users.user(email: email) else { throw Failure.noSuchUser(email) }
        return try await createAPIKey(userID: user.id, name: name)
    }

    public func createAPIKey(userID: Int64, name: String = "default") async throws -> CreatedKey {
        let secret = APIKeySecret.generate()
        let key = try await apiKeys.createAPIKey(
            userID: userID, name: name, prefix: APIKeySecret.displayPrefix(secret), keyHash: APIKeySecret.hash(secret))
        return CreatedKey(key: key, secret: secret)
    }

    /// False when no such key or it was revoked already. Throws `RevocationNotAnnounced` when the
    /// key is revoked but the api nodes could not be told (they stop accepting it within
    /// `APIKeyCache`'s TTL).
    public func revokeAPIKey(id: Int64) async throws -> Bool {
        guard try await apiKeys.revokeAPIKey(id: id, ownerID: nil) else { return false }
        do {
            guard let redis else { throw RedisError.unavailable("no Redis configured") }
            try await APIKeyCache.announceChange(redis: redis)
        } catch {
            throw RevocationNotAnnounced(reason: "\(error)")
        }
        return true
    }

    /// The key is revoked in the database, but api nodes may accept it from their caches until the entries expire.
    public struct RevocationNotAnnounced: Error, CustomStringConvertible {
        public var reason: String
        public var description: String {
            "the key is revoked, but the api nodes could not be told (\(reason)); they stop accepting it within \(APIKeyCache.defaultTTL)"
        }
    }

    static func isPlausibleEmail(_ email: String) -> Bool {
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && parts[1].contains(".") && email.count <= 254
            && !email.contains(where: \.isWhitespace)
    }
}
