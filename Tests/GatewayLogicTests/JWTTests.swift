import Foundation
import SwitchboardCore
import Testing

@testable import Gateway

@Suite struct JWTTests {
    let now = Int64(Date().timeIntervalSince1970)

    /// The hand-written base64url decoder against Foundation's, for every length up to 64 and
    /// random bytes, plus what it must refuse (padding, the standard alphabet's `+` and `/`, a
    /// length that no byte string encodes to).
    @Test func decodesBase64URLAsFoundationDoesAndRefusesTheRest() {
        var generator = SystemRandomNumberGenerator()
        for length in 0...64 {
            for _ in 0..<8 {
                let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
                let encoded = JWT.base64URLEncode(Data(bytes))
                #expect(Array(encoded.utf8).withUnsafeBytes { JWT.base64URLDecode($0) } == bytes, "\(encoded)")
            }
        }
        for bad in ["YQ==", "a+b/", "abcde", "ab.c", "ab c", "é"] {
            #expect(Array(bad.utf8).withUnsafeBytes { JWT.base64URLDecode($0) } == nil, "\(bad)")
        }
    }

    @Test func acceptsAValidConnectionToken() throws {
        let token = GatewayTokens.mint(secret: "s3cret", user: "42", ttl: 60, info: .object(["name": .string("Ada")]))
        let claims = try JWT.verify(token, secrets: ["s3cret"], now: now)
        let connection = try ConnectionToken(claims: claims)
        #expect(connection.user == "42")
        #expect(connection.info == #"{"name":"Ada"}"#)
        #expect(connection.expiresAt == now + 60 || connection.expiresAt == now + 61)
    }

    @Test(arguments: ["HS256", "HS384", "HS512"])
    func acceptsEveryHMACAlgorithm(algorithm: String) throws {
        let token = GatewayTokens.mint(secret: "k", user: "1", ttl: 60, algorithm: algorithm)
        #expect(try JWT.verify(token, secrets: ["k"], now: now)["sub"] == .string("1"))
    }

    /// The last header read is remembered with its algorithm; a token with other header bytes is
    /// read from its own header, never the remembered one.
    @Test func eachTokensAlgorithmComesFromItsOwnHeader() throws {
        let hs256 = GatewayTokens.mint(secret: "k", user: "1", ttl: 60, algorithm: "HS256")
        let hs512 = GatewayTokens.mint(secret: "k", user: "1", ttl: 60, algorithm: "HS512")
        for token in [hs256, hs512, hs256, hs256, hs512] {
            #expect(try JWT.verify(token, secrets: ["k"], now: now)["sub"] == .string("1"))
        }
        // HS256's signature under a header naming HS512.
        let parts = hs256.split(separator: ".")
        let relabelled = JWT.base64URLEncode(Data(#"{"alg":"HS512","typ":"JWT"}"#.utf8)) + "." + parts[1] + "." + parts[2]
        _ = try JWT.verify(hs256, secrets: ["k"], now: now)
        #expect(throws: JWT.Failure.invalid("bad signature")) { try JWT.verify(relabelled, secrets: ["k"], now: now) }
        _ = try JWT.verify(hs512, secrets: ["k"], now: now)
        let unsupported = JWT.base64URLEncode(Data(#"{"alg":"RS256"}"#.utf8)) + "." + parts[1] + "." + parts[2]
        #expect(throws: JWT.Failure.invalid("unsupported algorithm RS256")) { try JWT.verify(unsupported, secrets: ["k"], now: now) }
    }

    @Test func rejectsAnExpiredToken() {
        let token = GatewayTokens.mint(secret: "s", user: "1", ttl: 10, now: Date().addingTimeInterval(-60))
        #expect(throws: JWT.Failure.expired) { try JWT.verify(token, secrets: ["s"], now: now) }
    }

    @Test func rejectsABadSignature() {
        let token = GatewayTokens.mint(secret: "right", user: "1", ttl: 60)
        #expect(throws: JWT.Failure.invalid("bad signature")) { try JWT.verify(token, secrets: ["wrong"], now: now) }
        var tampered = Array(token)
        tampered[tampered.count - 2] = tampered[tampered.count - 2] == "A" ? "B" : "A"
        #expect(throws: JWT.Failure.self) { try JWT.verify(String(tampered), secrets: ["right"], now: now) }
    }

    @Test func rejectsUnsignedAndMalformedTokens() {
        let header = JWT.base64URLEncode(Data(#"{"alg":"none"}"#.utf8))
        let payload = JWT.base64URLEncode(Data(#"{"sub":"1"}"#.utf8))
        #expect(throws: JWT.Failure.self) { try JWT.verify("\(header).\(payload).", secrets: ["s"], now: now) }
        #expect(throws: JWT.Failure.self) { try JWT.verify("not-a-token", secrets: ["s"], now: now) }
        // The parts are split on the bytes: exactly two dots, wherever the token has non-ASCII.
        let token = GatewayTokens.mint(secret: "s", user: "1", ttl: 60)
        for broken in [token + ".", "." + token, token.replacingOccurrences(of: ".", with: ".."), "a.b", "é"] {
            #expect(throws: JWT.Failure.invalid("malformed token"), "\(broken)") { try JWT.verify(broken, secrets: ["s"], now: now) }
        }
        #expect(throws: JWT.Failure.invalid("malformed header")) { try JWT.verify("é" + token, secrets: ["s"], now: now) }
        #expect(throws: JWT.Failure.invalid("malformed signature")) { try JWT.verify(token + "é", secrets: ["s"], now: now) }
    }

    @Test func acceptsThePreviousSecretDuringRotation() throws {
        let old = GatewayTokens.mint(secret: "old", user: "7", ttl: 60)
        let new = GatewayTokens.mint(secret: "new", user: "7", ttl: 60)
        #expect(try JWT.verify(old, secrets: ["new", "old"], now: now)["sub"] == .string("7"))
        #expect(try JWT.verify(new, secrets: ["new", "old"], now: now)["sub"] == .string("7"))
        #expect(throws: JWT.Failure.self) { try JWT.verify(old, secrets: ["new"], now: now) }
    }

    @Test func expireAtOverridesExpAndZeroNeverExpires() throws {
        let claims: [String: JSONValue] = ["sub": .string("1"), "exp": .int(now - 100), "expire_at": .int(0)]
        let token = JWT.sign(claims: claims, secret: "s")
        let verified = try JWT.verify(token, secrets: ["s"], now: now)
        #expect(try ConnectionToken(claims: verified).expiresAt == nil)
    }

    @Test func subscriptionTokensCarryChannelAndOverrides() throws {
        let claims: [String: JSONValue] = [
            "sub": .string("5"), "channel": .string("$private:x"),
            "override": .object(["presence": .object(["value": .bool(true)])]),
        ]
        let token = try SubscriptionToken(claims: JWT.verify(JWT.sign(claims: claims, secret: "s"), secrets: ["s"], now: now))
        #expect(token.channel == "$private:x")
        #expect(token.override == ["presence": true])
        #expect(throws: JWT.Failure.self) { try ConnectionToken(claims: claims) }
    }
}
