/// HMAC JSON Web Tokens as Centrifugo reads them: verification, connection and subscription token claims, minting.
import Crypto
import Foundation
import Realtime
import SwitchboardCore
import Synchronization

/// HMAC-signed JSON Web Tokens (HS256, HS384, HS512) as Centrifugo reads them.
enum JWT {
    enum Failure: Error, Equatable {
        /// Malformed, unsupported algorithm or wrong signature.
        case invalid(String)
        case expired
    }

    /// The HMAC keys of the secrets (current, then previous), set up once. Setting up an HMAC
    /// hashes its key into the inner and outer states; doing that for every token cost a connect
    /// more than the MAC of the token itself.
    struct Keys: Sendable {
        let hs256: [HMAC<SHA256>]
        let hs384: [HMAC<SHA384>]
        let hs512: [HMAC<SHA512>]

        init(secrets: [String]) {
            let keys = secrets.filter { !$0.isEmpty }.map { SymmetricKey(data: Data($0.utf8)) }
            hs256 = keys.map { HMAC(key: $0) }
            hs384 = keys.map { HMAC(key: $0) }
            hs512 = keys.map { HMAC(key: $0) }
        }
    }

    /// Verifies the signature against each secret in turn (current, then previous) and returns the claims.
    static func verify(_ token: String, secrets: [String], now: Int64) throws(Failure) -> [String: JSONValue] {
        try verify(token, keys: Keys(secrets: secrets), now: now)
    }

    static func verify(_ token: String, keys: Keys, now: Int64) throws(Failure) -> [String: JSONValue] {
        var token = token
        // Over the token's UTF-8 bytes in place: walking a String or its views index by index
        // cost a connect more than the HMAC.
        return try token.withUTF8 { bytes in
            Result { () throws(Failure) in try verify(UnsafeRawBufferPointer(bytes), keys: keys, now: now) }
        }.get()
    }

    private static func verify(_ token: UnsafeRawBufferPointer, keys: Keys, now: Int64) throws(Failure) -> [String: JSONValue] {
        guard let firstDot = token.firstIndex(of: UInt8(ascii: ".")),
            let secondDot = token[(firstDot + 1)...].firstIndex(of: UInt8(ascii: ".")),
            !token[(secondDot + 1)...].contains(UInt8(ascii: "."))
        else { throw .invalid("malformed token") }
        let algorithm = try self.algorithm(header: UnsafeRawBufferPointer(rebasing: token[..<firstDot]))
        guard let signature = base64URLDecode(UnsafeRawBufferPointer(rebasing: token[(secondDot + 1)...])) else {
            throw .invalid("malformed signature")
        }
        let signingInput = UnsafeRawBufferPointer(rebasing: token[..<secondDot])
        // `==` between a MAC and bytes compares in constant time.
        func matches<H>(_ prepared: [HMAC<H>]) -> Bool {
            prepared.contains { key in
                var mac = key
                mac.update(data: signingInput)
                return mac.finalize() == signature
            }
        }
        let valid: Bool
        switch algorithm {
        case "HS256": valid = matches(keys.hs256)
        case "HS384": valid = matches(keys.hs384)
        case "HS512": valid = matches(keys.hs512)
        default: throw .invalid("unsupported algorithm \(algorithm)")
        }
        guard valid else { throw .invalid("bad signature") }
        guard let payloadBytes = base64URLDecode(UnsafeRawBufferPointer(rebasing: token[(firstDot + 1)..<secondDot])),
            case .object(let claims)? = JSONValue.parse(payloadBytes)
        else {
            throw .invalid("malformed payload")
        }
        if let notBefore = claims["nbf"]?.int64Value, notBefore > now { throw .invalid("token not yet valid") }
        if let expiry = expiry(of: claims), expiry > 0, expiry <= now { throw .expired }
        return claims
    }

    /// The last header read and its algorithm: the tokens of one issuer share their header, so
    /// most connects skip decoding and parsing it.
    private static let lastHeader = Mutex<(segment: [UInt8], algorithm: String)?>(nil)

    /// The `alg` of a token's header segment (base64url JSON).
    static func algorithm(header segment: UnsafeRawBufferPointer) throws(Failure) -> String {
        let known = lastHeader.withLock { last in last.flatMap { $0.segment.elementsEqual(segment) ? $0.algorithm : nil } }
        if let known { return known }
        guard let bytes = base64URLDecode(segment), let header = JSONValue.parse(bytes), let algorithm = header["alg"]?.stringValue else {
            throw .invalid("malformed header")
        }
        lastHeader.withLock { $0 = (Array(segment), algorithm) }
        return algorithm
    }

    /// `expire_at` overrides `exp`; 0 means never.
    static func expiry(of claims: [String: JSONValue]) -> Int64? {
        if let expireAt = claims["expire_at"]?.int64Value { return expireAt }
        return claims["exp"]?.int64Value
    }

    static func sign(claims: [String: JSONValue], secret: String, algorithm: String = "HS256") -> String {
        let header = JSONValue.object(["alg": .string(algorithm), "typ": .string("JWT")]).serialized
        let payload = JSONValue.object(claims).serialized
        let input = base64URLEncode(Data(header.utf8)) + "." + base64URLEncode(Data(payload.utf8))
        let key = SymmetricKey(data: Data(secret.utf8))
        let signature: Data
        switch algorithm {
        case "HS384": signature = Data(HMAC<SHA384>.authenticationCode(for: Data(input.utf8), using: key))
        case "HS512": signature = Data(HMAC<SHA512>.authenticationCode(for: Data(input.utf8), using: key))
        default: signature = Data(HMAC<SHA256>.authenticationCode(for: Data(input.utf8), using: key))
        }
        return input + "." + base64URLEncode(signature)
    }

    static func base64URLEncode(_ data: Data) -> String {
        data.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Base64url without padding (RFC 7515 §2), decoded from the UTF-8 bytes directly: every
    /// connect verifies a token, and going through Foundation's string replacing cost more than
    /// the HMAC. Nil for a character outside the alphabet, padding, or an impossible length.
    static func base64URLDecode(_ input: UnsafeRawBufferPointer) -> [UInt8]? {
        guard input.count % 4 != 1 else { return nil }
        var valid = true
        let decoded = [UInt8](unsafeUninitializedCapacity: input.count * 3 / 4) { output, count in
            base64URLValues.withUnsafeBufferPointer { values in
                var accumulator: UInt32 = 0
                var bits = 0
                var written = 0
                for byte in input {
                    let value = values[Int(byte)]
                    guard value < 64 else {
                        valid = false
                        break
                    }
                    accumulator = accumulator << 6 | UInt32(value)
                    bits += 6
                    if bits >= 8 {
                        bits -= 8
                        output[written] = UInt8(truncatingIfNeeded: accumulator >> UInt32(bits))
                        written += 1
                    }
                }
                count = valid ? written : 0
            }
        }
        return valid ? decoded : nil
    }

    /// Each byte's value in the base64url alphabet; 0xFF outside it.
    private static let base64URLValues: [UInt8] = {
        var values = [UInt8](repeating: 0xFF, count: 256)
        for (index, character) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8.enumerated() {
            values[Int(character)] = UInt8(index)
        }
        return values
    }()
}

/// Claims of a verified connection token.
struct ConnectionToken {
    var user: String
    var expiresAt: Int64?
    var info: String?
    var channels: [String]
    /// The `caps` claim: what the holder may do on the channels it names.
    var capabilities: [RealtimeCapability]

    init(claims: [String: JSONValue]) throws(JWT.Failure) {
        capabilities = Self.capabilities(claims["caps"])
        if claims["channel"] != nil { throw .invalid("connection token has a channel claim") }
        user = claims["sub"]?.stringValue ?? ""
        let expiry = JWT.expiry(of: claims)
        expiresAt = (expiry ?? 0) > 0 ? expiry : nil
        info = tokenInfo(claims)
        if case .array(let list)? = claims["channels"] {
            channels = list.compactMap(\.stringValue)
        } else {
            channels = []
        }
    }
}

extension ConnectionToken {
    /// `[{"channels": [...], "match": "wildcard"?, "allow": ["sub", ...]}]`; malformed entries are ignored.
    static func capabilities(_ claim: JSONValue?) -> [RealtimeCapability] {
        guard case .array(let entries)? = claim else { return [] }
        return entries.compactMap { entry in
            guard case .array(let channels)? = entry["channels"], case .array(let allow)? = entry["allow"] else { return nil }
            let match = entry["match"]?.stringValue.flatMap(RealtimeCapability.Match.init(rawValue:))
            return RealtimeCapability(channels: channels.compactMap(\.stringValue), match: match, allow: allow.compactMap(\.stringValue))
        }
    }
}

/// Claims of a verified subscription token.
struct SubscriptionToken {
    var user: String
    var channel: String
    var client: String?
    var expiresAt: Int64?
    var info: String?
    var data: String?
    var override: [String: Bool]

    init(claims: [String: JSONValue]) throws(JWT.Failure) {
        guard let channel = claims["channel"]?.stringValue, !channel.isEmpty else {
            throw .invalid("subscription token without channel")
        }
        self.channel = channel
        user = claims["sub"]?.stringValue ?? ""
        client = claims["client"]?.stringValue
        let expiry = JWT.expiry(of: claims)
        expiresAt = (expiry ?? 0) > 0 ? expiry : nil
        info = tokenInfo(claims)
        data = claims["data"].map(\.serialized)
        var override: [String: Bool] = [:]
        if case .object(let members)? = claims["override"] {
            for (name, value) in members {
                if let flag = value["value"]?.boolValue { override[name] = flag }
            }
        }
        self.override = override
    }
}

private func tokenInfo(_ claims: [String: JSONValue]) -> String? {
    if let info = claims["info"] { return info.serialized }
    if let encoded = claims["b64info"]?.stringValue, let bytes = Data(base64Encoded: encoded), let value = JSONValue.parse(bytes) {
        return value.serialized
    }
    return nil
}

/// Mints tokens the gateway accepts (for `switchboard token` and for services that hand tokens to browsers).
public enum GatewayTokens {
    /// A connection token when `channel` is nil, a subscription token for `channel` otherwise.
    /// - Parameters:
    ///   - ttl: seconds until the token expires (at least 1: every minted token expires).
    ///   - info: JSON that becomes `conn_info` (connection) or `chan_info` (subscription).
    ///   - channels: server-side subscriptions for a connection token.
    public static func mint(
        secret: String,
        user: String,
        channel: String? = nil,
        ttl: Int,
        info: JSONValue? = nil,
        channels: [String] = [],
        client: String? = nil,
        algorithm: String = "HS256",
        now: Date = Date()
    ) -> String {
        var claims: [String: JSONValue] = ["sub": .string(user)]
        let issued = Int64(now.timeIntervalSince1970)
        claims["iat"] = .int(issued)
        precondition(ttl > 0, "every minted token expires")
        claims["exp"] = .int(issued + Int64(ttl))
        if let info { claims["info"] = info }
        if let channel {
            claims["channel"] = .string(channel)
            if let client { claims["client"] = .string(client) }
        } else if !channels.isEmpty {
            claims["channels"] = .array(channels.map { .string($0) })
        }
        return JWT.sign(claims: claims, secret: secret, algorithm: algorithm)
    }
}
