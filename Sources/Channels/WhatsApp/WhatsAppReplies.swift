/// WhatsApp's deliverer: sends a stored reply to the contact through the Graph API
/// (`POST {graph}/{phone number id}/messages`), split into parts of at most 4096 UTF-16 units at
/// paragraph or sentence boundaries, and records the wamid WhatsApp gave it. When a turn starts,
/// the contact's message is marked read with a typing indicator.
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Storage
import SwitchboardCore

public struct WhatsAppReplies: ChannelDelivery {
    public var channels: Set<SwitchboardCore.Channel> { [.whatsapp] }

    let stores: Stores
    let secrets: SecretBox
    let graphURL: String
    let http: HTTPClient
    let timeout: TimeAmount
    let logger: Logger

    public init(
        stores: Stores, secrets: SecretBox, graphURL: String, http: HTTPClient = .shared, timeout: TimeAmount = .seconds(15),
        logger: Logger = Logger(label: "switchboard.whatsapp")
    ) {
        self.stores = stores
        self.secrets = secrets
        self.graphURL = graphURL.hasSuffix("/") ? String(graphURL.dropLast()) : graphURL
        self.http = http
        self.timeout = timeout
        self.logger = logger
    }

    /// The longest `text.body` WhatsApp takes, counted in UTF-16 code units.
    public static let maximumLength = 4096

    public func deliver(reply: Message, origin: Message) async throws {
        let (connection, waID) = try await recipient(of: origin)
        var firstID: String?
        for part in Self.parts(of: reply.content) {
            let id = try await send(connection, [
                "messaging_product": "whatsapp", "recipient_type": "individual", "to": waID, "type": "text",
                "text": ["body": part, "preview_url": false],
            ])
            if firstID == nil { firstID = id }
        }
        if let firstID { _ = try await stores.messages.recordSent(id: reply.id, externalID: firstID) }
    }

    public func turnStarted(origin: Message) async {
        guard let wamid = origin.externalID else { return }
        do {
            let (connection, _) = try await recipient(of: origin)
            _ = try await send(connection, [
                "messaging_product": "whatsapp", "status": "read", "message_id": wamid, "typing_indicator": ["type": "text"],
            ])
        } catch {
            logger.info("could not mark the message read", metadata: ["message_id": "\(origin.id)", "error": "\(error)"])
        }
    }

    /// The connection the question came in on and the contact who asked, from its chat's thread key.
    func recipient(of origin: Message) async throws -> (WhatsAppConnection, String) {
        guard let chat = try await stores.chats.chat(id: origin.chatID, ownerID: origin.ownerID), let key = chat.externalThreadKey,
              let (connectionID, waID) = WhatsAppConnection.parseThreadKey(key)
        else { throw DeliveryError(.notDeliverable, "message \(origin.id) did not come from a WhatsApp contact") }
        guard let stored = try await stores.connections.connection(id: connectionID), stored.ownerID == origin.ownerID else {
            throw DeliveryError(.connectionGone, "the WhatsApp connection \(connectionID) was deleted")
        }
        return (try WhatsAppConnection(stored, secrets: secrets), waID)
    }

    /// Posts `body` to the connection's `/messages`; returns the wamid of a sent message.
    func send(_ connection: WhatsAppConnection, _ body: [String: Any]) async throws -> String? {
        var request = HTTPClientRequest(url: "\(graphURL)/\(connection.phoneNumberID)/messages")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(connection.accessToken)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        let response = try await http.execute(request, timeout: timeout)
        let answer = try await response.body.collect(upTo: 1 << 20)
        let json = (try? JSONSerialization.jsonObject(with: Data(answer.readableBytesView))) as? [String: Any]
        let status = Int(response.status.code)
        guard (200..<300).contains(status) else { throw Self.failure(status: status, json: json) }
        return ((json?["messages"] as? [[String: Any]])?.first?["id"]) as? String
    }

    /// What an error answer means: a closed 24-hour window and other client errors are final
    /// (the job goes to `failed` with Meta's code and message); 429 and 5xx are retried.
    static func failure(status: Int, json: [String: Any]?) -> any Error {
        let error = json?["error"] as? [String: Any]
        let code = (error?["code"] as? Int) ?? 0
        let text = (error?["message"] as? String) ?? "HTTP \(status)"
        if code == 131047 {
            return DeliveryError(.whatsappWindowClosed, "the 24-hour customer service window is closed (131047): \(text)")
        }
        if status == 429 || status >= 500 || code == 4 || code == 130429 {
            return WhatsAppRetryableError(status: status, code: code, message: text)
        }
        return DeliveryError(.whatsappRejected, "WhatsApp refused the message (HTTP \(status), code \(code)): \(text)")
    }

    /// `text` in order, in parts of at most `limit` UTF-16 units, cut after a paragraph, else a
    /// sentence, else a space, else anywhere.
    public static func parts(of text: String, limit: Int = maximumLength) -> [String] {
        var parts: [String] = []
        var rest = Substring(text)
        while rest.utf16.count > limit {
            var end = rest.startIndex
            var count = 0
            for index in rest.indices {
                let width = rest[index].utf16.count
                if count + width > limit { break }
                count += width
                end = rest.index(after: index)
            }
            let head = rest[rest.startIndex..<end]
            let cut = Self.lastBoundary(in: head, after: ["\n\n"]) ?? Self.lastBoundary(in: head, after: [". ", "! ", "? ", ".\n", "\n"])
                ?? Self.lastBoundary(in: head, after: [" "]) ?? end
            let part = rest[rest.startIndex..<cut].trimmingCharacters(in: .whitespacesAndNewlines)
            if !part.isEmpty { parts.append(part) }
            rest = rest[cut...]
        }
        let last = rest.trimmingCharacters(in: .whitespacesAndNewlines)
        if !last.isEmpty || parts.isEmpty { parts.append(last) }
        return parts
    }

    /// The end of the last `separators` match in `text` (a cut point), if it leaves a part of some length.
    static func lastBoundary(in text: Substring, after separators: [String]) -> String.Index? {
        var best: String.Index?
        for separator in separators {
            if let range = text.range(of: separator, options: .backwards), range.upperBound > text.startIndex,
               text.distance(from: text.startIndex, to: range.upperBound) > text.count / 4 {
                if best == nil || range.upperBound > best! { best = range.upperBound }
            }
        }
        return best
    }
}

/// A send WhatsApp may take later (rate limited, a server error): the job retries it with backoff.
public struct WhatsAppRetryableError: Error, CustomStringConvertible {
    public var status: Int
    public var code: Int
    public var message: String
    public var description: String { "WhatsApp answered HTTP \(status) (code \(code)): \(message); will retry" }
}

extension ErrorCode where Kind == DeliveryFailure {
    /// The customer-service window of 24 hours since the contact's last message is closed.
    public static var whatsappWindowClosed: Self { "whatsapp_window_closed" }
    /// WhatsApp refused the message (a client error other than the closed window).
    public static var whatsappRejected: Self { "whatsapp_rejected" }
    /// The channel connection the question came in on no longer exists.
    public static var connectionGone: Self { "connection_gone" }
}
