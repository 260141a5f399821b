import Channels
import Foundation
import Hummingbird
import Storage
import SwitchboardCore

/// The email branch of `/api/v1/channels`: an inbound address, optional SMTP (`smtp://` or
/// `smtps://`, STARTTLS required or optional) and IMAP (`imap://` or `imaps://`) servers, and the
/// credentials of the inbound webhooks. Passwords and keys are sealed and never returned;
/// credentials inside a URL are refused, so none is stored in clear.
extension ChannelsAPI {
    func createEmail(_ body: ChannelFields, ownerID: Int64) async throws -> Response {
        let name = try Self.required(body.name, "name", limit: Self.maxNameCharacters)
        var settings: [String: String] = [:]
        var secrets: [String: String] = [:]
        try Self.applyEmail(body.email, to: &settings, secrets: &secrets, creating: true)
        let created = try await connections.createConnection(NewChannelConnection(
            ownerID: ownerID, type: EmailConnection.type, name: name, publicID: Self.newPublicID(),
            settings: settings, sealedSecrets: try dependencies.secrets.seal(secrets)))
        return try APIJSON.response(
            ChannelJSON(created, secretsSet: Self.secretsSet(of: created)), status: .created, headers: [.location: "/api/v1/channels/\(created.id)"])
    }

    /// The secrets set on a connection (names only).
    static func secretsSet(of connection: ChannelConnection) -> [String] {
        guard connection.type == EmailConnection.type else { return secretFields }
        return (connection.settings["secretsSet"] ?? "").split(separator: ",").map(String.init)
    }

    /// Validates the email fields given and writes them into settings and secrets.
    static func applyEmail(_ fields: EmailFields, to settings: inout [String: String], secrets: inout [String: String], creating: Bool) throws {
        if creating || fields.address != nil {
            let address = try required(fields.address, "address", limit: 320).trimmingCharacters(in: .whitespaces)
            guard isAddress(address) else { throw SwitchboardError.invalidField("address", "must be an email address such as support@example.com") }
            settings["address"] = address
        }
        if let fromName = fields.fromName { settings["fromName"] = String(fromName.prefix(200)) }
        if let domain = fields.replyDomain {
            guard domain.contains("."), domain.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" }) else {
                throw SwitchboardError.invalidField("replyDomain", "must be a domain name such as reply.example.com")
            }
            settings["replyDomain"] = domain.lowercased()
        }
        if let url = fields.smtpUrl { settings["smtpUrl"] = try serverURL(url, field: "smtpUrl", schemes: ["smtp", "smtps"]) }
        if let tls = fields.smtpStartTls {
            guard EmailConnection.StartTLS(rawValue: tls) != nil else { throw SwitchboardError.invalidField("smtpStartTls", "must be required or optional") }
            settings["smtpStartTls"] = tls
        }
        if let tls = fields.imapStartTls {
            guard EmailConnection.StartTLS(rawValue: tls) != nil else { throw SwitchboardError.invalidField("imapStartTls", "must be required or optional") }
            settings["imapStartTls"] = tls
        }
        if let url = fields.imapUrl { settings["imapUrl"] = try serverURL(url, field: "imapUrl", schemes: ["imap", "imaps"]) }
        if let mailbox = fields.imapMailbox { settings["imapMailbox"] = try required(mailbox, "imapMailbox", limit: 200) }
        for (field, value) in [("smtpUsername", fields.smtpUsername), ("imapUsername", fields.imapUsername), ("webhookUsername", fields.webhookUsername)] {
            if let value { settings[field] = try required(value, field, limit: 320) }
        }
        for (field, value) in [
            ("smtpPassword", fields.smtpPassword), ("imapPassword", fields.imapPassword), ("webhookPassword", fields.webhookPassword),
            ("mailgunSigningKey", fields.mailgunSigningKey), ("bearerToken", fields.bearerToken),
        ] {
            if let value { secrets[field] = try required(value, field, limit: maxSecretCharacters) }
        }
        if secrets["webhookPassword"] != nil, settings["webhookUsername"] == nil {
            throw SwitchboardError.invalidField("webhookUsername", "is required with webhookPassword")
        }
        if settings["imapUrl"] != nil, settings["imapUsername"] == nil || secrets["imapPassword"] == nil {
            throw SwitchboardError.invalidField("imapUsername", "imapUsername and imapPassword are required with imapUrl")
        }
        settings["secretsSet"] = EmailConnection.secretFields.filter { secrets[$0] != nil }.joined(separator: ",")
    }

    static func isAddress(_ text: String) -> Bool {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && parts[1].contains(".") && !text.contains(where: { $0.isWhitespace || $0 == "<" || $0 == ">" })
    }

    static func serverURL(_ text: String, field: String, schemes: [String]) throws -> String {
        guard let url = URLComponents(string: text), let scheme = url.scheme?.lowercased(), schemes.contains(scheme), url.host?.isEmpty == false else {
            throw SwitchboardError.invalidField(field, "must be \(schemes.map { "\($0)://host[:port]" }.joined(separator: " or "))")
        }
        guard url.user == nil, url.password == nil else {
            throw SwitchboardError.invalidField(field, "must not contain credentials; give them in the username and password fields")
        }
        return text
    }

    func updateEmail(_ connection: ChannelConnection, _ body: ChannelFields, ownerID: Int64) async throws -> Response {
        let name = try body.name.map { try Self.required($0, "name", limit: Self.maxNameCharacters) }
        var settings = connection.settings
        // Secrets sealed under another key cannot be opened: then the given ones replace them all.
        var secrets = (try? dependencies.secrets.open(connection.sealedSecrets)) ?? [:]
        try Self.applyEmail(body.email, to: &settings, secrets: &secrets, creating: false)
        guard let updated = try await connections.updateConnection(
            id: connection.id, ownerID: ownerID, name: name, settings: settings, sealedSecrets: try dependencies.secrets.seal(secrets))
        else { throw SwitchboardError.notFound("no channel \(connection.id)") }
        return try APIJSON.response(ChannelJSON(updated, secretsSet: Self.secretsSet(of: updated)))
    }
}

/// The email fields of a channel body.
struct EmailFields: Decodable {
    var address, fromName, replyDomain, smtpUrl, smtpUsername, smtpPassword, smtpStartTls: String?
    var imapUrl, imapUsername, imapPassword, imapMailbox, imapStartTls: String?
    var webhookUsername, webhookPassword, mailgunSigningKey, bearerToken: String?

    /// The name of the first email field given, if any.
    var firstGiven: String? {
        let named: [(String, String?)] = [
            ("address", address), ("fromName", fromName), ("replyDomain", replyDomain), ("smtpUrl", smtpUrl), ("smtpUsername", smtpUsername),
            ("smtpPassword", smtpPassword), ("smtpStartTls", smtpStartTls), ("imapUrl", imapUrl), ("imapUsername", imapUsername),
            ("imapPassword", imapPassword), ("imapMailbox", imapMailbox), ("imapStartTls", imapStartTls), ("webhookUsername", webhookUsername),
            ("webhookPassword", webhookPassword), ("mailgunSigningKey", mailgunSigningKey), ("bearerToken", bearerToken),
        ]
        return named.first { $0.1 != nil }?.0
    }

    /// Refuses email fields on a channel of another type (400), instead of ignoring them.
    func refuse(for type: String) throws {
        if let field = firstGiven { throw SwitchboardError.invalidField(field, "applies to email channels only, not to \(type)") }
    }
}
