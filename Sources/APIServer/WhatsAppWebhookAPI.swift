import Channels
import Foundation
import Hummingbird
import Logging
import Storage
import SwitchboardCore

/// `/api/v1/webhooks/whatsapp/{channelId}`: Meta's subscription check (GET) and its deliveries
/// (POST). No API key: a delivery is authenticated by its signature over the exact body, checked
/// before anything is parsed. Messages go to the channel intake (stored; a text's turn queued, a
/// media message's download queued, any other type answered politely through the delivery
/// queue) and the answer is a quick 200, which is all Meta waits for; statuses raise the delivery status of
/// the replies they name. An unknown channel id costs the same work as a known one before its 404.
struct WhatsAppWebhookAPI: Sendable {
    let dependencies: APIDependencies
    let adapter = WhatsAppInbound()

    /// Stands in for an unknown channel, so its request is checked like any other.
    static let stranger = WhatsAppConnection(
        id: 0, ownerID: 0, phoneNumberID: "0", accessToken: "", appSecret: "no such channel", verifyToken: "no such channel")

    func verify(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let (connection, known) = try await self.connection(context)
        let query = Dictionary(request.uri.queryParameters.map { (String($0.key), String($0.value)) }, uniquingKeysWith: { first, _ in first })
        guard let challenge = WhatsAppInbound.challengeAnswer(query: query, verifyToken: connection.verifyToken), known else {
            throw SwitchboardError(.forbidden, status: 403, "the verify token does not match")
        }
        return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: challenge)))
    }

    func receive(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        var request = request
        let body = try await APIJSON.collect(&request, maxBytes: dependencies.settings.maxBodyBytes)
        let (connection, known) = try await self.connection(context)
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        let delivery = WhatsAppDelivery(
            request: InboundRequest(method: "POST", path: request.uri.path, headers: headers, body: Array(body.readableBytesView)),
            connection: connection)
        let signed = (try? adapter.verify(delivery)) != nil
        guard known else { throw SwitchboardError.notFound("no channel \(context.parameters.get("channelId") ?? "")") }
        guard signed else { throw SwitchboardError(.unauthorized, status: 401, "missing or invalid \(WhatsAppInbound.signatureHeader)") }

        var accepted = 0, duplicates = 0
        let intake = dependencies.intake
        for received in try adapter.received(in: delivery) {
            let outcome = try await intake.accept(
                received.message, logger: context.logger, handOff: received.handOff(connectionID: connection.id, intake: intake))
            if outcome.isDuplicate { duplicates += 1 } else { accepted += 1 }
        }
        var statuses = 0
        for update in try adapter.statuses(in: delivery) {
            if try await dependencies.stores.messages.raiseDeliveryStatus(
                ownerID: connection.ownerID, channel: .whatsapp, externalID: update.messageID, to: update.status) {
                statuses += 1
            }
        }
        return try APIJSON.response(WebhookReceiptJSON(accepted: accepted, duplicates: duplicates, statuses: statuses))
    }

    /// The WhatsApp connection named in the path, or the stand-in (and false) when there is none.
    private func connection(_ context: APIRequestContext) async throws -> (WhatsAppConnection, Bool) {
        guard let publicID = context.parameters.get("channelId"), publicID.count <= 64,
              let stored = try await dependencies.stores.connections.connection(publicID: publicID), stored.type == WhatsAppConnection.type
        else { return (Self.stranger, false) }
        do {
            return (try WhatsAppConnection(stored, secrets: dependencies.secrets), true)
        } catch {
            context.logger.error("the secrets of a WhatsApp channel cannot be opened (was secrets.key changed?)", metadata: ["channel": "\(stored.id)"])
            throw SwitchboardError.unavailable("the channel's secrets cannot be read; re-enter them with PATCH /api/v1/channels/\(stored.id)")
        }
    }
}

struct WebhookReceiptJSON: Encodable {
    /// Messages stored and queued.
    var accepted: Int
    /// Messages the channel had delivered before (stored once).
    var duplicates: Int
    /// Reply statuses that moved forward.
    var statuses: Int
}
