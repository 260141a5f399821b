import Channels
import Foundation
import Hummingbird
import Storage
import SwitchboardCore

/// `/api/v1/channels`: a user's connections to outside channels (today: WhatsApp numbers). The
/// secrets given at creation are sealed (`SecretBox`) and never returned; a connection shows
/// which ones are set and the webhook URL to give the channel's peer.
struct ChannelsAPI: Sendable {
    let dependencies: APIDependencies
    var connections: any ChannelConnectionStore { dependencies.stores.connections }
    var api: PublicAPI { PublicAPI(dependencies: dependencies) }

    static let maxNameCharacters = 200
    static let maxSecretCharacters = 4096
    static let secretFields = ["accessToken", "appSecret", "verifyToken"]

    func create(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        var request = request
        let posted = try await APIJSON.decode(ChannelBody.self, from: &request, maxBytes: dependencies.settings.maxBodyBytes)
        let body = posted.fields
        if posted.type == EmailConnection.type { return try await createEmail(body, ownerID: caller.user.id) }
        guard posted.type == WhatsAppConnection.type else {
            throw SwitchboardError.invalidField("type", "must be one of: whatsapp, email")
        }
        try body.email.refuse(for: posted.type)
        let name = try Self.required(body.name, "name", limit: Self.maxNameCharacters)
        let phoneNumberID = try Self.phoneNumberID(body.phoneNumberId)
        var secrets: [String: String] = [:]
        for (field, value) in [("accessToken", body.accessToken), ("appSecret", body.appSecret), ("verifyToken", body.verifyToken)] {
            secrets[field] = try Self.required(value, field, limit: Self.maxSecretCharacters)
        }
        let connection = try await connections.createConnection(NewChannelConnection(
            ownerID: caller.user.id, type: WhatsAppConnection.type, name: name, publicID: Self.newPublicID(),
            settings: ["phoneNumberId": phoneNumberID], sealedSecrets: try dependencies.secrets.seal(secrets)))
        return try APIJSON.response(
            ChannelJSON(connection, secretsSet: Self.secretFields), status: .created, headers: [.location: "/api/v1/channels/\(connection.id)"])
    }

    func list(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let all = try await connections.connections(ownerID: caller.user.id)
        return try APIJSON.response(PageJSON(data: all.map { ChannelJSON($0, secretsSet: Self.secretsSet(of: $0)) }, nextCursor: nil))
    }

    func get(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let connection = try await owned(context)
        return try APIJSON.response(ChannelJSON(connection, secretsSet: Self.secretsSet(of: connection)))
    }

    func update(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let connection = try await owned(context)
        var request = request
        let body = try await APIJSON.decode(ChannelFields.self, from: &request, maxBytes: dependencies.settings.maxBodyBytes)
        if connection.type == EmailConnection.type { return try await updateEmail(connection, body, ownerID: caller.user.id) }
        try body.email.refuse(for: connection.type)
        let name = try body.name.map { try Self.required($0, "name", limit: Self.maxNameCharacters) }
        var settings: [String: String]?
        if let phone = body.phoneNumberId {
            settings = connection.settings.merging(["phoneNumberId": try Self.phoneNumberID(phone)]) { $1 }
        }
        var sealed: Data?
        let changed = [("accessToken", body.accessToken), ("appSecret", body.appSecret), ("verifyToken", body.verifyToken)]
            .filter { $0.1 != nil }
        if !changed.isEmpty {
            // Secrets sealed under another key cannot be opened: then the given ones replace them all.
            var secrets = (try? dependencies.secrets.open(connection.sealedSecrets)) ?? [:]
            for (field, value) in changed { secrets[field] = try Self.required(value, field, limit: Self.maxSecretCharacters) }
            sealed = try dependencies.secrets.seal(secrets)
        }
        guard let updated = try await connections.updateConnection(
            id: connection.id, ownerID: caller.user.id, name: name, settings: settings, sealedSecrets: sealed)
        else { throw SwitchboardError.notFound("no channel \(connection.id)") }
        return try APIJSON.response(ChannelJSON(updated, secretsSet: Self.secretFields))
    }

    func delete(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let id = try api.pathID(context, "channelId", what: "channel")
        guard try await connections.deleteConnection(id: id, ownerID: caller.user.id) else { throw SwitchboardError.notFound("no channel \(id)") }
        return Response(status: .noContent)
    }

    private func owned(_ context: APIRequestContext) async throws -> ChannelConnection {
        let caller = try context.requireCaller()
        let id = try api.pathID(context, "channelId", what: "channel")
        guard let connection = try await connections.connection(id: id, ownerID: caller.user.id) else {
            throw SwitchboardError.notFound("no channel \(id)")
        }
        return connection
    }

    static func required(_ value: String?, _ field: String, limit: Int) throws -> String {
        guard let value, !value.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw SwitchboardError.invalidField(field, "is required")
        }
        if value.count > limit { throw SwitchboardError.invalidField(field, "is longer than \(limit) characters") }
        return value
    }

    static func phoneNumberID(_ value: String?) throws -> String {
        let id = try required(value, "phoneNumberId", limit: 64)
        guard id.allSatisfy(\.isASCII), id.allSatisfy(\.isNumber) else { throw SwitchboardError.invalidField("phoneNumberId", "must be digits") }
        return id
    }

    /// 128 random bits: a webhook URL nobody can guess.
    static func newPublicID() -> String {
        var generator = SystemRandomNumberGenerator()
        return "ch_" + (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}

/// `POST /channels`: the type, then the same fields as a PATCH.
struct ChannelBody: Decodable {
    var type: String
    var fields: ChannelFields

    private enum CodingKeys: String, CodingKey { case type }

    init(from decoder: any Decoder) throws {
        type = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .type)
        fields = try ChannelFields(from: decoder)
    }
}

/// The fields of a channel body, at creation and in `PATCH /channels/{id}`: the name, WhatsApp's
/// number and secrets, and the email fields (`EmailFields`), all optional here; what a type
/// requires is checked by its branch.
struct ChannelFields: Decodable {
    var name, phoneNumberId, accessToken, appSecret, verifyToken: String?
    var email: EmailFields

    private enum CodingKeys: String, CodingKey { case name, phoneNumberId, accessToken, appSecret, verifyToken }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decodeIfPresent(String.self, forKey: .name)
        phoneNumberId = try container.decodeIfPresent(String.self, forKey: .phoneNumberId)
        accessToken = try container.decodeIfPresent(String.self, forKey: .accessToken)
        appSecret = try container.decodeIfPresent(String.self, forKey: .appSecret)
        verifyToken = try container.decodeIfPresent(String.self, forKey: .verifyToken)
        email = try EmailFields(from: decoder)
    }
}

/// A connection as the API shows it: never its secrets, only which of them are set.
struct ChannelJSON: Encodable {
    var id: Int64
    var type: String
    var name: String
    var publicId: String
    var phoneNumberId: String?
    // email (settings only; never a secret)
    var address: String?
    var fromName: String?
    var replyDomain: String?
    var smtpUrl: String?
    var smtpUsername: String?
    var smtpStartTls: String?
    var imapUrl: String?
    var imapUsername: String?
    var imapMailbox: String?
    var imapStartTls: String?
    var webhookUsername: String?
    var webhookUrl: String
    var secretsSet: [String]
    var createdAt: String
    var updatedAt: String

    init(_ connection: ChannelConnection, secretsSet: [String]) {
        id = connection.id
        type = connection.type
        name = connection.name
        publicId = connection.publicID
        phoneNumberId = connection.settings["phoneNumberId"]
        if connection.type == EmailConnection.type {
            let settings = connection.settings
            address = settings["address"]
            fromName = settings["fromName"]
            replyDomain = settings["replyDomain"] ?? address.map { String($0.split(separator: "@").last ?? "") }
            smtpUrl = settings["smtpUrl"]
            smtpUsername = settings["smtpUsername"]
            smtpStartTls = settings["smtpUrl"] == nil ? nil : (settings["smtpStartTls"] ?? "required")
            imapUrl = settings["imapUrl"]
            imapUsername = settings["imapUsername"]
            imapMailbox = settings["imapUrl"] == nil ? nil : (settings["imapMailbox"] ?? "INBOX")
            imapStartTls = settings["imapUrl"] == nil ? nil : (settings["imapStartTls"] ?? "required")
            webhookUsername = settings["webhookUsername"]
        }
        webhookUrl = "/api/v1/webhooks/\(connection.type)/\(connection.publicID)"
        self.secretsSet = secretsSet
        createdAt = APIJSON.timestamp(connection.createdAt)
        updatedAt = APIJSON.timestamp(connection.updatedAt)
    }
}
