/// Seals the secrets of channel connections for storage (AES-256-GCM, a fresh nonce each time)
/// and opens them again: a database dump alone does not reveal an access token or an app secret.
import Crypto
import Foundation
import SwitchboardCore

public struct SecretBox: Sendable {
    private let key: SymmetricKey
    /// True for the fixed development key (`development()`): nothing is protected by it.
    public let isDevelopmentKey: Bool

    /// `key`: 32 bytes (`secrets.key`).
    public init(key: Data) {
        precondition(key.count == 32, "a secrets key is 32 bytes")
        self.key = SymmetricKey(data: key)
        isDevelopmentKey = false
    }

    private init(developmentKey: SymmetricKey) {
        key = developmentKey
        isDevelopmentKey = true
    }

    /// A fixed key for development, derived from a public string: secrets sealed with it are as
    /// good as plain text. Production refuses to start without `secrets.key`.
    public static func development() -> SecretBox {
        SecretBox(developmentKey: SymmetricKey(data: SHA256.hash(data: Data("switchboard development secrets key".utf8))))
    }

    /// Bound into every box, so a box sealed for something else does not open as channel secrets.
    static let context = Data("switchboard channel secrets v1".utf8)

    public func seal(_ secrets: [String: String]) throws -> Data {
        let plain = try JSONEncoder().encode(secrets)
        guard let combined = try AES.GCM.seal(plain, using: key, authenticating: Self.context).combined else {
            throw SwitchboardError(.internalError, status: 500, "the secrets could not be sealed")
        }
        return combined
    }

    /// Throws when the box was sealed with another key or altered.
    public func open(_ sealed: Data) throws -> [String: String] {
        let box = try AES.GCM.SealedBox(combined: sealed)
        let plain = try AES.GCM.open(box, using: key, authenticating: Self.context)
        return try JSONDecoder().decode([String: String].self, from: plain)
    }
}
