import Channels
import Foundation
import SwitchboardCore
import Testing

/// WhatsApp's adapter and sender logic, without servers: signatures over the exact bytes, what a
/// webhook POST turns into, the subscription check, and how long replies are split.
@Suite("WhatsApp logic")
struct WhatsAppLogicTests {
    static let connection = WhatsAppConnection(
        id: 7, ownerID: 3, phoneNumberID: "1234567890", accessToken: "token", appSecret: "app-secret", verifyToken: "verify-me")

    static func delivery(_ body: String, signature: String?) -> WhatsAppDelivery {
        var headers: [String: String] = [:]
        if let signature { headers["X-Hub-Signature-256"] = signature }
        return WhatsAppDelivery(request: InboundRequest(method: "POST", path: "/", headers: headers, body: Array(body.utf8)), connection: connection)
    }

    static let payload = #"""
    {"object":"whatsapp_business_account","entry":[
      {"id":"WABA","changes":[{"field":"messages","value":{"messaging_product":"whatsapp",
        "metadata":{"display_phone_number":"15550000","phone_number_id":"1234567890"},
        "contacts":[{"profile":{"name":"Ada"},"wa_id":"15551234"}],
        "messages":[{"from":"15551234","id":"wamid.A","timestamp":"1700000000","type":"text","text":{"body":"Hi, é ok? @you"}},
                    {"from":"15551234","id":"wamid.B","timestamp":"1700000001","type":"image","image":{"id":"m1","mime_type":"image/jpeg","caption":"look"}}]}}]},
      {"id":"WABA","changes":[{"field":"messages","value":{"messaging_product":"whatsapp",
        "contacts":[{"profile":{"name":"Bob"},"wa_id":"15559999"}],
        "messages":[{"from":"15559999","id":"wamid.C","timestamp":"1700000002","type":"text","text":{"body":"second entry"}}],
        "statuses":[{"id":"wamid.OUT","status":"read","timestamp":"1700000003","recipient_id":"15551234"},
                    {"id":"wamid.OUT","status":"bogus"}]}}]}
    ]}
    """#

    @Test func onlyTheAppSecretsSignatureOverTheExactBytesIsAccepted() throws {
        let good = WhatsAppInbound.signature(of: Array(Self.payload.utf8), secret: "app-secret")
        #expect(good.hasPrefix("sha256=") && good.count == 7 + 64)
        #expect(throws: Never.self) { try WhatsAppInbound().verify(Self.delivery(Self.payload, signature: good)) }
        let rejected: [String?] = [
            nil, "", "sha256=", "sha1=" + good.dropFirst(7), good.uppercased(),
            WhatsAppInbound.signature(of: Array(Self.payload.utf8), secret: "another-secret"),
            String(good.dropLast(2)) + (good.hasSuffix("00") ? "11" : "00"),
        ]
        for signature in rejected {
            #expect(throws: SwitchboardError.self, "\(signature ?? "nil")") { try WhatsAppInbound().verify(Self.delivery(Self.payload, signature: signature)) }
        }
        // The same JSON, re-serialized (one space less): a different body, so a different signature.
        let reformatted = Self.payload.replacingOccurrences(of: "\"id\":\"WABA\"", with: "\"id\": \"WABA\"")
        #expect(throws: SwitchboardError.self) { try WhatsAppInbound().verify(Self.delivery(reformatted, signature: good)) }
        #expect(throws: SwitchboardError.self) { try WhatsAppInbound().accept(Self.delivery(Self.payload, signature: nil)) }
    }

    @Test func everyMessageOfEveryEntryBecomesOneInboundMessagePerWamid() throws {
        let delivery = Self.delivery(Self.payload, signature: WhatsAppInbound.signature(of: Array(Self.payload.utf8), secret: "app-secret"))
        let messages = try WhatsAppInbound().accept(delivery)
        #expect(messages.map(\.externalID) == ["wamid.A", "wamid.B", "wamid.C"])
        #expect(messages.allSatisfy { $0.ownerID == 3 && $0.channel == .whatsapp })
        #expect(messages[0].content == "Hi, é ok? @you")
        #expect(messages[0].chat == .thread(key: "wa:7:15551234", title: "Ada"))
        #expect(messages[1].content == "look\n[image]")
        #expect(messages[2].chat == .thread(key: "wa:7:15559999", title: "Bob"))
        #expect(try WhatsAppInbound().statuses(in: delivery) == [WhatsAppStatusUpdate(messageID: "wamid.OUT", status: .read)])
    }

    @Test func mediaIsFetchedAndAnyOtherTypeIsAnsweredAsUnsupported() throws {
        let body = #"""
        {"entry":[{"changes":[{"field":"messages","value":{"messages":[
          {"from":"1","id":"w.1","type":"text","text":{"body":"hello"}},
          {"from":"1","id":"w.2","type":"document","document":{"id":"4410","mime_type":"application/pdf","filename":"q3.pdf","caption":"numbers"}},
          {"from":"1","id":"w.3","type":"audio","audio":{"id":"4411","mime_type":"audio/ogg"}},
          {"from":"1","id":"w.4","type":"image","image":{"id":"../../etc/passwd"}},
          {"from":"1","id":"w.5","type":"video"},
          {"from":"1","id":"w.6","type":"location","location":{"latitude":1,"longitude":2}},
          {"from":"1","id":"w.7","type":"sticker","sticker":{"id":"4412"}},
          {"from":"1","id":"w.8","type":"text","text":{"body":""}},
          {"from":"1","id":"w.9"}
        ]}}]}]}
        """#
        let received = try WhatsAppInbound().received(in: Self.delivery(body, signature: nil))
        #expect(received.map(\.kind) == [
            .text, .media(WhatsAppMedia(kind: "document", id: "4410", mimeType: "application/pdf", filename: "q3.pdf")),
            .media(WhatsAppMedia(kind: "audio", id: "4411", mimeType: "audio/ogg")),
            .unsupported(type: "image"), .unsupported(type: "video"), .unsupported(type: "location"), .unsupported(type: "sticker"),
            .unsupported(type: "text"), .unsupported(type: "unknown"),
        ])
        #expect(received.map(\.message.content) == [
            "hello", "numbers\n[document: q3.pdf]", "[audio]", "[image message: not supported]", "[video message: not supported]",
            "[location message: not supported]", "[sticker message: not supported]", "[text message: not supported]",
            "[unknown message: not supported]",
        ])
        #expect(WhatsAppReceived.unsupportedReply(type: "audio").contains("your voice message"))
        #expect(WhatsAppReceived.unsupportedReply(type: "hologram").contains("your message."))
        #expect(WhatsAppReceived.downloadFailedReply(type: "document").contains("download the document"))
    }

    @Test func aBodyThatIsNotAWebhookIsABadRequest() {
        let body = "not json"
        let error = #expect(throws: SwitchboardError.self) {
            try WhatsAppInbound().accept(Self.delivery(body, signature: WhatsAppInbound.signature(of: Array(body.utf8), secret: "app-secret")))
        }
        #expect(error?.status == 400)
    }

    @Test func theSubscriptionCheckAnswersOnlyItsOwnToken() {
        let ok = ["hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158201444"]
        #expect(WhatsAppInbound.challengeAnswer(query: ok, verifyToken: "verify-me") == "1158201444")
        #expect(WhatsAppInbound.challengeAnswer(query: ok.merging(["hub.verify_token": "verify-m"]) { $1 }, verifyToken: "verify-me") == nil)
        #expect(WhatsAppInbound.challengeAnswer(query: ok.merging(["hub.mode": "unsubscribe"]) { $1 }, verifyToken: "verify-me") == nil)
        #expect(WhatsAppInbound.challengeAnswer(query: ok, verifyToken: "") == nil)
    }

    @Test func threadKeysNameTheConnectionAndTheContact() {
        #expect(WhatsAppConnection.parseThreadKey(WhatsAppConnection.threadKey(connectionID: 12, waID: "4915")).map { "\($0.connectionID) \($0.waID)" } == "12 4915")
        #expect(WhatsAppConnection.parseThreadKey("wa:x:1") == nil)
        #expect(WhatsAppConnection.parseThreadKey("mail:1:a") == nil)
    }

    @Test func longRepliesAreSplitInOrderAtParagraphsWithinTheLimit() {
        let paragraph = String(repeating: "word ", count: 300).trimmingCharacters(in: .whitespaces) + "."
        let text = (1...5).map { "\($0). \(paragraph)" }.joined(separator: "\n\n")
        let parts = WhatsAppReplies.parts(of: text, limit: 4096)
        #expect(parts.count > 1)
        #expect(parts.allSatisfy { $0.utf16.count <= 4096 })
        #expect(parts.joined(separator: "\n\n") == text, "cut at paragraph breaks only, nothing lost or reordered")
        // Emoji count two UTF-16 units each: a text of 3000 of them needs two parts.
        let emoji = String(repeating: "😀", count: 3000)
        let emojiParts = WhatsAppReplies.parts(of: emoji, limit: 4096)
        #expect(emojiParts.count == 2 && emojiParts.allSatisfy { $0.utf16.count <= 4096 } && emojiParts.joined() == emoji)
        #expect(WhatsAppReplies.parts(of: "short") == ["short"])
    }

    @Test func sealedSecretsOpenOnlyWithTheirKey() throws {
        let box = SecretBox(key: Data(repeating: 7, count: 32))
        let sealed = try box.seal(["accessToken": "EAAG-secret-token"])
        #expect(!String(decoding: sealed, as: UTF8.self).contains("EAAG"))
        #expect(try box.open(sealed) == ["accessToken": "EAAG-secret-token"])
        #expect(try box.seal(["a": "b"]) != box.seal(["a": "b"]), "a fresh nonce each time")
        #expect(throws: (any Error).self) { try SecretBox(key: Data(repeating: 8, count: 32)).open(sealed) }
        var tampered = sealed
        tampered[tampered.count - 1] ^= 1
        #expect(throws: (any Error).self) { try box.open(tampered) }
    }
}
