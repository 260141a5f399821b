/// Email's inbound adapter for webhooks: checks that a post comes from the connection's peer
/// before anything in it is read (Postmark-style JSON: the connection's basic-auth credentials;
/// Mailgun-style forms: `hex(HMAC-SHA256(signing key, timestamp + token))`, at most 5 minutes
/// old; raw MIME: the connection's bearer token; all compared in constant time), then reads the
/// mail. Threading and storing are `EmailReceiver`'s.
import Crypto
import Foundation
import Mail
import SwitchboardCore

/// A webhook post for one email connection.
public struct EmailDelivery: Sendable {
    public var request: InboundRequest
    public var connection: EmailConnection
    public var format: EmailWebhookFormat
    /// When it arrived (Mailgun timestamps are checked against it).
    public var receivedAt: Date

    public init(request: InboundRequest, connection: EmailConnection, format: EmailWebhookFormat, receivedAt: Date = Date()) {
        self.request = request
        self.connection = connection
        self.format = format
        self.receivedAt = receivedAt
    }
}

public struct EmailInbound: InboundAdapter {
    public var channel: Channel { .email }

    /// How old a Mailgun signature's timestamp may be (either way, for clock skew).
    public var maximumSignatureAge: TimeInterval

    public init(maximumSignatureAge: TimeInterval = 300) { self.maximumSignatureAge = maximumSignatureAge }

    public func verify(_ payload: EmailDelivery) throws {
        let connection = payload.connection
        switch payload.format {
        case .postmark:
            guard let user = connection.webhookUsername, let password = connection.webhookPassword, !password.isEmpty,
                  Self.isBasicAuth(payload.request.header("Authorization"), user: user, password: password)
            else { throw Self.unauthorized("missing or wrong basic-auth credentials") }
        case .rawMIME:
            guard let token = connection.bearerToken, !token.isEmpty,
                  let given = payload.request.header("Authorization"), given.lowercased().hasPrefix("bearer "),
                  ConstantTime.equals(String(given.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces), token)
            else { throw Self.unauthorized("missing or wrong bearer token") }
        case .mailgun:
            guard let key = connection.mailgunSigningKey, !key.isEmpty else { throw Self.unauthorized("the channel has no Mailgun signing key") }
            let fields = try EmailWebhookParsing.formFields(payload.request)
            func field(_ name: String) -> String? { fields.first { $0.name == name }?.text }
            guard let timestamp = field("timestamp"), let token = field("token"), let signature = field("signature") else {
                throw Self.unauthorized("missing Mailgun signature fields (timestamp, token, signature)")
            }
            guard Self.isMailgunSigned(timestamp: timestamp, token: token, signature: signature, key: key) else {
                throw Self.unauthorized("invalid Mailgun signature")
            }
            guard let seconds = TimeInterval(timestamp), abs(payload.receivedAt.timeIntervalSince1970 - seconds) <= maximumSignatureAge else {
                throw Self.unauthorized("the Mailgun timestamp is more than \(Int(maximumSignatureAge / 60)) minutes old")
            }
        }
    }

    /// The mail in a verified post.
    public func mails(in payload: EmailDelivery) throws -> [ReceivedMail] {
        switch payload.format {
        case .postmark: return [try EmailWebhookParsing.postmark(payload.request.body)]
        case .mailgun: return [try EmailWebhookParsing.mailgun(try EmailWebhookParsing.formFields(payload.request))]
        case .rawMIME:
            guard !payload.request.body.isEmpty else { throw SwitchboardError.badRequest("the body is empty: expected a raw message") }
            return [ReceivedMail(mail: MIMEParser.parse(payload.request.body))]
        }
    }

    /// Each mail as a message of a new thread (`EmailReceiver` threads them against what is stored).
    public func messages(in payload: EmailDelivery) throws -> [InboundMessage] {
        try mails(in: payload).map { received in
            InboundMessage(
                ownerID: payload.connection.ownerID, channel: .email, content: EmailReceiver.content(of: received.mail),
                chat: .thread(
                    key: EmailConnection.threadKey(connectionID: payload.connection.id, token: EmailConnection.newReplyToken()),
                    title: received.mail.subject),
                externalID: received.externalID, ignoredReason: received.mail.automatic?.rawValue)
        }
    }

    /// The Mailgun token of a verified form post (each is accepted once).
    public func mailgunToken(in payload: EmailDelivery) throws -> String? {
        guard payload.format == .mailgun else { return nil }
        return try EmailWebhookParsing.formFields(payload.request).first { $0.name == "token" }?.text
    }

    static func unauthorized(_ message: String) -> SwitchboardError { SwitchboardError(.unauthorized, status: 401, message) }

    /// True when `header` is `Basic base64(user:password)` for these credentials (constant time).
    public static func isBasicAuth(_ header: String?, user: String, password: String) -> Bool {
        guard let header, header.lowercased().hasPrefix("basic "),
              let decoded = Data(base64Encoded: String(header.dropFirst("basic ".count)).trimmingCharacters(in: .whitespaces))
        else { return false }
        let expected = Array("\(user):\(password)".utf8)
        return ConstantTime.equals(Array(decoded), expected)
    }

    /// Mailgun: `signature == hex(HMAC-SHA256(key, timestamp + token))`, compared in constant time.
    public static func isMailgunSigned(timestamp: String, token: String, signature: String, key: String) -> Bool {
        guard let mac = WhatsAppInbound.hexBytes(Substring(signature.lowercased())), mac.count == SHA256.byteCount else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Data((timestamp + token).utf8), using: SymmetricKey(data: Data(key.utf8)))
    }

    /// The signature Mailgun sends (tests and tools).
    public static func mailgunSignature(timestamp: String, token: String, key: String) -> String {
        HMAC<SHA256>.authenticationCode(for: Data((timestamp + token).utf8), using: SymmetricKey(data: Data(key.utf8)))
            .map { String(format: "%02x", $0) }.joined()
    }
}
