import Channels
import Foundation
import Hummingbird
import Logging
import Storage
import SwitchboardCore

/// `POST /api/v1/webhooks/email/{channelId}`: inbound mail for an email channel, as Postmark-style
/// JSON (basic auth), a Mailgun-style form (signed; each token accepted once), or raw MIME
/// (`message/rfc822`, bearer token). No API key: each post is authenticated by the channel's own
/// credentials before anything in it is read; an unknown channel costs the same work before its
/// 404. The mail is threaded, deduplicated and stored, and its turn queued (an auto-reply is
/// stored as ignored); the answer is a quick 200 with counts.
struct EmailWebhookAPI: Sendable {
    let dependencies: APIDependencies
    let adapter = EmailInbound()

    /// Stands in for an unknown channel, so its request is checked like any other.
    static let stranger = EmailConnection(
        id: 0, ownerID: 0, address: "nobody@invalid", webhookUsername: "no such channel", webhookPassword: "no such channel",
        mailgunSigningKey: "no such channel", bearerToken: "no such channel")

    var receiver: EmailReceiver {
        EmailReceiver(
            stores: dependencies.stores, intake: dependencies.intake, redis: dependencies.redis,
            attachments: EmailAttachmentStore(intake: dependencies.fileIntake, maxBytes: dependencies.settings.email.maxAttachmentBytes))
    }

    func receive(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        var request = request
        let body = try await APIJSON.collect(&request, maxBytes: dependencies.settings.email.maxMessageBytes)
        let (connection, known) = try await self.connection(context)
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        let format = EmailWebhookFormat.of(contentType: headers["content-type"])
        let delivery = EmailDelivery(
            request: InboundRequest(method: "POST", path: request.uri.path, headers: headers, body: Array(body.readableBytesView)),
            connection: connection, format: format ?? .rawMIME)
        let verified = Result { try adapter.verify(delivery) }
        guard known else { throw SwitchboardError.notFound("no channel \(context.parameters.get("channelId") ?? "")") }
        guard format != nil else {
            throw SwitchboardError.badRequest(
                "unsupported Content-Type; send application/json (Postmark), application/x-www-form-urlencoded or multipart/form-data (Mailgun), or message/rfc822 (raw MIME)")
        }
        try verified.get()

        let receiver = self.receiver
        var token: String?
        if let given = try adapter.mailgunToken(in: delivery) {
            guard try await receiver.claimMailgunToken(given, connectionID: connection.id) else {
                throw SwitchboardError(.unauthorized, status: 401, "this Mailgun token was accepted before (a replayed post)")
            }
            token = given
        }
        var accepted = 0, duplicates = 0, ignored = 0
        var messageIDs: [Int64] = []
        do {
            for mail in try adapter.mails(in: delivery) {
                let outcome = try await receiver.receive(mail, connection: connection, logger: context.logger)
                messageIDs.append(outcome.message.id)
                if outcome.isDuplicate { duplicates += 1 } else if outcome.message.status == .cancelled { ignored += 1 } else { accepted += 1 }
            }
        } catch {
            if let token { await receiver.releaseMailgunToken(token, connectionID: connection.id) }
            throw error
        }
        return try APIJSON.response(EmailReceiptJSON(accepted: accepted, duplicates: duplicates, ignored: ignored, messageIds: messageIDs))
    }

    /// The email connection named in the path, or the stand-in (and false) when there is none.
    private func connection(_ context: APIRequestContext) async throws -> (EmailConnection, Bool) {
        guard let publicID = context.parameters.get("channelId"), publicID.count <= 64,
              let stored = try await dependencies.stores.connections.connection(publicID: publicID), stored.type == EmailConnection.type
        else { return (Self.stranger, false) }
        do {
            return (try EmailConnection(stored, secrets: dependencies.secrets), true)
        } catch {
            context.logger.error("the secrets of an email channel cannot be opened (was secrets.key changed?)", metadata: ["channel": "\(stored.id)"])
            throw SwitchboardError.unavailable("the channel's secrets cannot be read; re-enter them with PATCH /api/v1/channels/\(stored.id)")
        }
    }
}

struct EmailReceiptJSON: Encodable {
    /// Mails stored whose turns were queued.
    var accepted: Int
    /// Mails delivered before (same Message-ID): stored once.
    var duplicates: Int
    /// Mails a machine wrote (auto-replies, bounces): stored, never answered.
    var ignored: Int
    /// The stored messages, in order.
    var messageIds: [Int64]
}
