/// The generic webhook channel's rows: what a webhook request asked for (`webhook_requests`: the
/// callback URL and metadata of its message) and each API key's sealed callback signing secret
/// (`webhook_secrets`).
import Foundation
import SwitchboardCore

/// What a generic webhook request asked for, kept beside its message.
public struct WebhookRequest: Sendable, Equatable {
    public var messageID: Int64
    /// The API key that sent it (its signing secret signs the callback); nil once the key is deleted.
    public var apiKeyID: Int64?
    public var callbackURL: String?
    /// The request's `metadata` object as JSON text.
    public var metadata: String?

    public init(messageID: Int64, apiKeyID: Int64?, callbackURL: String?, metadata: String?) {
        self.messageID = messageID
        self.apiKeyID = apiKeyID
        self.callbackURL = callbackURL
        self.metadata = metadata
    }
}

public protocol WebhookStore: Sendable {
    func recordRequest(_ request: WebhookRequest) async throws
    func request(messageID: Int64) async throws -> WebhookRequest?
    /// Replaces the key's signing secret (sealed by the caller).
    func setSigningSecret(apiKeyID: Int64, sealed: Data) async throws
    func signingSecret(apiKeyID: Int64) async throws -> Data?
}

public struct MariaDBWebhookStore: WebhookStore {
    let database: Database

    public init(database: Database) { self.database = database }

    public func recordRequest(_ request: WebhookRequest) async throws {
        _ = try await database.execute(
            "INSERT INTO webhook_requests (message_id, api_key_id, callback_url, metadata, created_at) VALUES (?, ?, ?, ?, ?)",
            [.int(request.messageID), .optional(request.apiKeyID), .optional(request.callbackURL), .optional(request.metadata),
             .date(.databaseNow())])
    }

    public func request(messageID: Int64) async throws -> WebhookRequest? {
        try await database.queryFirst(
            "SELECT message_id, api_key_id, callback_url, metadata FROM webhook_requests WHERE message_id = ?", [.int(messageID)]
        ).map { row in
            WebhookRequest(
                messageID: try row.int("message_id"), apiKeyID: try row.optionalInt("api_key_id"),
                callbackURL: try row.optionalString("callback_url"), metadata: try row.optionalString("metadata"))
        }
    }

    public func setSigningSecret(apiKeyID: Int64, sealed: Data) async throws {
        _ = try await database.execute(
            """
            INSERT INTO webhook_secrets (api_key_id, sealed_secret, created_at) VALUES (?, ?, ?)
            ON DUPLICATE KEY UPDATE sealed_secret = VALUES(sealed_secret), created_at = VALUES(created_at)
            """,
            [.int(apiKeyID), .blob(sealed), .date(.databaseNow())])
    }

    public func signingSecret(apiKeyID: Int64) async throws -> Data? {
        try await database.queryFirst("SELECT sealed_secret FROM webhook_secrets WHERE api_key_id = ?", [.int(apiKeyID)])
            .map { row in try row.data("sealed_secret") }
    }
}
