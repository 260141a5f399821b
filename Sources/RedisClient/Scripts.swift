/// Lua scripts run with EVALSHA, falling back to EVAL when the server lost its cache.

/// A Lua script and its SHA-1, computed locally so EVALSHA needs no round trip first.
public struct RedisScript: Sendable, Hashable {
    public let source: String
    public let sha1: String

    public init(_ source: String) {
        self.source = source
        self.sha1 = SHA1.hexDigest(Array(source.utf8))
    }
}

extension RedisClient {
    /// EVALSHA with the script's keys prefixed (arguments are not). On NOSCRIPT (a restarted
    /// server, SCRIPT FLUSH) the same call is sent as EVAL with the source, which runs the
    /// script and caches it again in one step: a SCRIPT LOAD followed by EVALSHA could lose a
    /// race with another flush. Script errors throw `RedisError.server`.
    public func evalScript(_ script: RedisScript, keys: [String], args: [any RESPArgument]) async throws -> RESPValue {
        do {
            return try await send(scriptCommand(script, keys: keys, args: args, withSource: false))
        } catch let error as RedisError where error.serverErrorCode == "NOSCRIPT" {
            return try await send(scriptCommand(script, keys: keys, args: args, withSource: true))
        }
    }

    /// The EVALSHA (or, `withSource`, EVAL) command that runs `script`, keys prefixed: for
    /// callers that pipeline scripts and handle NOSCRIPT replies themselves.
    public func scriptCommand(_ script: RedisScript, keys: [String], args: [any RESPArgument], withSource: Bool) -> RedisCommand {
        let prefix = configuration.keyPrefix
        return scriptCommand(script, prefixedKeys: keys.map { RESPConcatenation(prefix, $0) }, args: args, withSource: withSource)
    }

    /// The same with keys that carry the prefix already (`RESPConcatenation(configuration.keyPrefix, …)`
    /// builds one without joining strings).
    public func scriptCommand(
        _ script: RedisScript, prefixedKeys: [any RESPArgument], args: [any RESPArgument], withSource: Bool
    ) -> RedisCommand {
        var arguments: [any RESPArgument] = []
        arguments.reserveCapacity(2 + prefixedKeys.count + args.count)
        arguments.append(withSource ? script.source : script.sha1)
        arguments.append(prefixedKeys.count)
        arguments.append(contentsOf: prefixedKeys)
        arguments.append(contentsOf: args)
        return RedisCommand(withSource ? "EVAL" : "EVALSHA", arguments: arguments)
    }

    /// SCRIPT LOAD; returns the SHA-1 Redis computed.
    @discardableResult
    public func scriptLoad(_ source: String) async throws -> String {
        try await stringReply(RedisCommand("SCRIPT", "LOAD", source))
    }
}

/// SHA-1 (FIPS 180-4), only to name scripts the way Redis does.
enum SHA1 {
    static func hexDigest(_ message: [UInt8]) -> String {
        var h: (UInt32, UInt32, UInt32, UInt32, UInt32) = (0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0)
        var data = message
        let bitLength = UInt64(message.count) * 8
        data.append(0x80)
        while data.count % 64 != 56 { data.append(0) }
        for shift in stride(from: 56, through: 0, by: -8) { data.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift))) }

        var w = [UInt32](repeating: 0, count: 80)
        for chunk in stride(from: 0, to: data.count, by: 64) {
            for i in 0..<16 {
                let j = chunk + i * 4
                w[i] = UInt32(data[j]) << 24 | UInt32(data[j + 1]) << 16 | UInt32(data[j + 2]) << 8 | UInt32(data[j + 3])
            }
            for i in 16..<80 { w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1) }
            var (a, b, c, d, e) = h
            for i in 0..<80 {
                let (f, k): (UInt32, UInt32)
                switch i {
                case 0..<20: (f, k) = ((b & c) | (~b & d), 0x5A82_7999)
                case 20..<40: (f, k) = (b ^ c ^ d, 0x6ED9_EBA1)
                case 40..<60: (f, k) = ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC)
                default: (f, k) = (b ^ c ^ d, 0xCA62_C1D6)
                }
                let t = rotl(a, 5) &+ f &+ e &+ k &+ w[i]
                (e, d, c, b, a) = (d, c, rotl(b, 30), a, t)
            }
            h = (h.0 &+ a, h.1 &+ b, h.2 &+ c, h.3 &+ d, h.4 &+ e)
        }
        return [h.0, h.1, h.2, h.3, h.4].map { word in
            let hex = String(word, radix: 16)
            return String(repeating: "0", count: 8 - hex.count) + hex
        }.joined()
    }

    private static func rotl(_ x: UInt32, _ n: UInt32) -> UInt32 { x << n | x >> (32 - n) }
}
