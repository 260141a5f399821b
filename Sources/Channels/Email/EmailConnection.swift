/// What an email connection holds: the inbound address and the reply domain, SMTP and IMAP
/// settings in clear, and its secrets (SMTP and IMAP passwords, the inbound webhooks' basic-auth
/// password, Mailgun signing key and raw-MIME bearer token) opened from the sealed box only where
/// they are used. Chats of its threads are keyed `email:{connection}:{reply token}`.
import Foundation
import SwitchboardCore

public struct EmailConnection: Sendable, Equatable {
    public static let type = "email"

    /// Whether an `smtp://` server must upgrade to TLS with STARTTLS (`required`) or may stay in
    /// clear when it offers no STARTTLS (`optional`). `smtps://` is TLS from the start.
    public enum StartTLS: String, Sendable, Equatable, CaseIterable { case required, optional }

    public var id: Int64
    public var ownerID: Int64
    /// The inbound address replies come from, e.g. `support@example.com`.
    public var address: String
    public var fromName: String?
    /// Where `reply+{token}@…` addresses live (default: the address's domain).
    public var replyDomain: String
    public var smtpURL: String?
    public var smtpUsername: String?
    public var smtpPassword: String?
    public var startTLS: StartTLS
    public var imapURL: String?
    public var imapUsername: String?
    public var imapPassword: String?
    public var imapMailbox: String
    /// The same choice as `startTLS`, for an `imap://` server.
    public var imapStartTLS: StartTLS
    /// Basic auth of the Postmark-style JSON webhook.
    public var webhookUsername: String?
    public var webhookPassword: String?
    /// Mailgun's HTTP webhook signing key.
    public var mailgunSigningKey: String?
    /// `Authorization: Bearer` of raw MIME posts.
    public var bearerToken: String?

    public init(
        id: Int64, ownerID: Int64, address: String, fromName: String? = nil, replyDomain: String? = nil, smtpURL: String? = nil,
        smtpUsername: String? = nil, smtpPassword: String? = nil, startTLS: StartTLS = .required, imapURL: String? = nil,
        imapUsername: String? = nil, imapPassword: String? = nil, imapMailbox: String = "INBOX", imapStartTLS: StartTLS = .required, webhookUsername: String? = nil,
        webhookPassword: String? = nil, mailgunSigningKey: String? = nil, bearerToken: String? = nil
    ) {
        self.id = id
        self.ownerID = ownerID
        self.address = address
        self.fromName = fromName
        self.replyDomain = replyDomain ?? String(address.split(separator: "@").last ?? "")
        self.smtpURL = smtpURL
        self.smtpUsername = smtpUsername
        self.smtpPassword = smtpPassword
        self.startTLS = startTLS
        self.imapURL = imapURL
        self.imapUsername = imapUsername
        self.imapPassword = imapPassword
        self.imapMailbox = imapMailbox
        self.imapStartTLS = imapStartTLS
        self.webhookUsername = webhookUsername
        self.webhookPassword = webhookPassword
        self.mailgunSigningKey = mailgunSigningKey
        self.bearerToken = bearerToken
    }

    /// The settings kept in clear, by name.
    public static let settingFields = ["address", "fromName", "replyDomain", "smtpUrl", "smtpUsername", "smtpStartTls", "imapUrl", "imapUsername", "imapMailbox", "imapStartTls", "webhookUsername"]
    /// The secrets, sealed.
    public static let secretFields = ["smtpPassword", "imapPassword", "webhookPassword", "mailgunSigningKey", "bearerToken"]

    /// Opens a stored connection of type `email`.
    public init(_ connection: ChannelConnection, secrets box: SecretBox) throws {
        guard connection.type == Self.type else {
            throw SwitchboardError(.internalError, status: 500, "channel \(connection.id) is not an email connection")
        }
        let secrets = try box.open(connection.sealedSecrets)
        let settings = connection.settings
        self.init(
            id: connection.id, ownerID: connection.ownerID, address: settings["address"] ?? "", fromName: settings["fromName"],
            replyDomain: settings["replyDomain"], smtpURL: settings["smtpUrl"], smtpUsername: settings["smtpUsername"],
            smtpPassword: secrets["smtpPassword"], startTLS: StartTLS(rawValue: settings["smtpStartTls"] ?? "") ?? .required,
            imapURL: settings["imapUrl"], imapUsername: settings["imapUsername"], imapPassword: secrets["imapPassword"],
            imapMailbox: settings["imapMailbox"] ?? "INBOX", imapStartTLS: StartTLS(rawValue: settings["imapStartTls"] ?? "") ?? .required,
            webhookUsername: settings["webhookUsername"],
            webhookPassword: secrets["webhookPassword"], mailgunSigningKey: secrets["mailgunSigningKey"], bearerToken: secrets["bearerToken"])
    }

    /// The chat of one thread on this connection: `email:{connection id}:{token}`.
    public static func threadKey(connectionID: Int64, token: String) -> String { "email:\(connectionID):\(token)" }

    /// The connection id and the reply token in a thread key; nil for any other key.
    public static func parseThreadKey(_ key: String) -> (connectionID: Int64, token: String)? {
        let parts = key.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "email", let id = Int64(parts[1]), !parts[2].isEmpty else { return nil }
        return (id, String(parts[2]))
    }

    /// The address a thread's replies should come back to: `reply+{token}@{reply domain}`.
    public func replyAddress(token: String) -> String { "reply+\(token)@\(replyDomain)" }

    /// The reply token in `address` when it is one of this connection's reply addresses.
    public func replyToken(in address: String) -> String? {
        let lower = address.lowercased()
        guard lower.hasPrefix("reply+"), lower.hasSuffix("@" + replyDomain.lowercased()) else { return nil }
        let token = lower.dropFirst("reply+".count).prefix { $0 != "@" }
        guard (16...64).contains(token.count), token.allSatisfy({ $0.isHexDigit }) else { return nil }
        return String(token)
    }

    /// 128 random bits as hex: a reply address nobody can guess.
    public static func newReplyToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}
