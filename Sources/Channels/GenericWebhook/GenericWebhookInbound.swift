/// The generic webhook as a channel, inbound: a request the api authenticated with an API key
/// (`POST /api/v1/webhooks/generic`) becomes an `InboundMessage` on the `webhook` channel in a new
/// chat; and how its callbacks are signed (`WebhookSignature`).
import Crypto
import Foundation
import SwitchboardCore

/// A message submitted to the generic webhook (validated by the api).
public struct GenericWebhookSubmission: Sendable, Equatable {
    public var userID: Int64
    public var message: String

    public init(userID: Int64, message: String) {
        self.userID = userID
        self.message = message
    }
}

/// The generic webhook's inbound adapter: every request starts a chat of its own.
public struct GenericWebhookInbound: InboundAdapter {
    public var channel: Channel { .webhook }

    public init() {}

    /// The api's key check at the edge is this channel's authentication.
    public func verify(_ payload: GenericWebhookSubmission) throws {}

    public func messages(in payload: GenericWebhookSubmission) throws -> [InboundMessage] {
        [InboundMessage(ownerID: payload.userID, channel: channel, content: payload.message, chat: .new(title: nil))]
    }
}

/// `X-Switchboard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` on
/// every callback, with the signing secret of the API key that sent the request.
public enum WebhookSignature {
    public static let header = "X-Switchboard-Signature"
    /// What signing secrets start with.
    public static let secretPrefix = "whsec_"

    /// A new signing secret: 32 random bytes, hex, prefixed.
    public static func newSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        return secretPrefix + (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    /// The header value for `body` signed at `timestamp`.
    public static func value(secret: String, timestamp: Int, body: [UInt8]) -> String {
        "t=\(timestamp),v1=\(hex(secret: secret, timestamp: timestamp, body: body))"
    }

    static func hex(secret: String, timestamp: Int, body: [UInt8]) -> String {
        var hmac = HMAC<SHA256>(key: SymmetricKey(data: Data(secret.utf8)))
        hmac.update(data: Data("\(timestamp).".utf8))
        hmac.update(data: body)
        return hmac.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// True when `header` signs `body` with `secret` within `tolerance` seconds of `now` (what a
    /// receiver checks; compared in constant time).
    public static func isValid(header: String, secret: String, body: [UInt8], now: Date = Date(), tolerance: TimeInterval = 300) -> Bool {
        var timestamp: Int?
        var signatures: [String] = []
        for part in header.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2 else { continue }
            if pair[0] == "t" { timestamp = Int(pair[1]) } else if pair[0] == "v1" { signatures.append(pair[1]) }
        }
        guard let timestamp, abs(now.timeIntervalSince1970 - Double(timestamp)) <= tolerance else { return false }
        let expected = Array(hex(secret: secret, timestamp: timestamp, body: body).utf8)
        return signatures.contains { ConstantTime.equals(Array($0.utf8), expected) }
    }
}
