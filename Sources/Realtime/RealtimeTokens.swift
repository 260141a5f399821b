/// Connection tokens for the realtime gateway, minted by the api: HS256 JWTs with `sub`, `iat`,
/// `exp` (every token expires) and the `caps` claim naming the channels the holder may use.
import Crypto
import Foundation

/// A minted connection token and what it allows.
public struct RealtimeToken: Sendable, Hashable {
    public var token: String
    public var expiresAt: Date
    public var capabilities: [RealtimeCapability]
}

/// Mints connection tokens the gateway (and Centrifugo) accept.
public struct RealtimeTokenMinter: Sendable {
    public let secret: String
    /// Seconds a token lives (at least 1).
    public let ttl: Int

    public init(secret: String, ttl: Int = 600) {
        precondition(!secret.isEmpty, "a realtime token needs a secret")
        self.secret = secret
        self.ttl = max(1, ttl)
    }

    public func mint(subject: String, capabilities: [RealtimeCapability], now: Date = Date()) -> RealtimeToken {
        let issued = Int64(now.timeIntervalSince1970)
        let expires = issued + Int64(ttl)
        var claims: [String: Any] = ["sub": subject, "iat": issued, "exp": expires]
        if !capabilities.isEmpty {
            claims["caps"] = capabilities.map { capability -> [String: Any] in
                var entry: [String: Any] = ["channels": capability.channels, "allow": capability.allow]
                if let match = capability.match { entry["match"] = match.rawValue }
                return entry
            }
        }
        return RealtimeToken(
            token: Self.sign(claims: claims, secret: secret), expiresAt: Date(timeIntervalSince1970: TimeInterval(expires)),
            capabilities: capabilities)
    }

    static func sign(claims: [String: Any], secret: String) -> String {
        let header = #"{"alg":"HS256","typ":"JWT"}"#
        let payload = (try? JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys])) ?? Data("{}".utf8)
        let input = base64URL(Data(header.utf8)) + "." + base64URL(payload)
        let signature = HMAC<SHA256>.authenticationCode(for: Data(input.utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return input + "." + base64URL(Data(signature))
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
