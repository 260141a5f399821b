import APIServer
import Channels
import Files
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Mail
import NIOCore
import Storage
import SwitchboardCore
import TestSupport
import Testing
import TurnTestSupport

/// Email in through `POST /api/v1/webhooks/email/{channelId}` against real Redis and MariaDB: a
/// channel made through the API, each format authenticated before anything is stored, Mailgun
/// replays and forgeries refused, dedupe by Message-ID, threading, auto-replies stored but never
/// answered, malformed mail stored as text, attachments stored as files or refused over the limit.
@Suite("Email channel webhooks", .serialized)
struct EmailWebhookTests {
    static let webhookPassword = "postmark-basic-pass"
    static let signingKey = "key-mailgun-signing-0123"
    static let bearer = "raw-mime-bearer-token-99"

    static func createChannel(_ client: some TestClientProtocol, key: String, extra: [String: Any] = [:]) async throws -> [String: Any] {
        var body: [String: Any] = [
            "type": "email", "name": "Support mail", "address": "support@shop.example", "fromName": "Shop Support",
            "webhookUsername": "postmark", "webhookPassword": webhookPassword, "mailgunSigningKey": signingKey, "bearerToken": bearer,
        ]
        for (field, value) in extra { body[field] = value }
        return try await client.execute(uri: "/api/v1/channels", method: .post, headers: .auth(key), body: jsonBody(body)) { response in
            #expect(response.status == .created, "\(response.text)")
            for secret in [webhookPassword, signingKey, bearer] { #expect(!response.text.contains(secret)) }
            return response.json
        }
    }

    static func raw(
        from: String = "Ada <ada@example.com>", to: String = "support@shop.example", subject: String = "Order 42", id: String,
        inReplyTo: String? = nil, references: String? = nil, extraHeaders: String = "", body: String = "Where is my order?"
    ) -> String {
        var headers = "From: \(from)\r\nTo: \(to)\r\nSubject: \(subject)\r\nMessage-ID: <\(id)>\r\nDate: Fri, 4 Dec 2026 09:00:00 +0000\r\n"
        if let inReplyTo { headers += "In-Reply-To: <\(inReplyTo)>\r\n" }
        if let references { headers += "References: \(references)\r\n" }
        return headers + extraHeaders + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n"
    }

    static func postRaw(_ client: some TestClientProtocol, _ url: String, _ message: String, token: String = bearer) async throws -> TestResponse {
        try await client.execute(
            uri: url, method: .post, headers: [.contentType: "message/rfc822", .authorization: "Bearer \(token)"], body: ByteBuffer(string: message))
    }

    static func mailgunBody(_ fields: [(String, String)], token: String, timestamp: Date = Date(), key: String = signingKey) -> String {
        let stamp = String(Int(timestamp.timeIntervalSince1970))
        let signature = EmailInbound.mailgunSignature(timestamp: stamp, token: token, key: key)
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return (fields + [("timestamp", stamp), ("token", token), ("signature", signature)])
            .map { "\($0.0.addingPercentEncoding(withAllowedCharacters: allowed)!)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed)!)" }
            .joined(separator: "&")
    }

    static func postForm(_ client: some TestClientProtocol, _ url: String, _ body: String) async throws -> TestResponse {
        try await client.execute(uri: url, method: .post, headers: [.contentType: "application/x-www-form-urlencoded"], body: ByteBuffer(string: body))
    }

    func chats(_ env: TestEnvironment, _ user: User) async throws -> [Chat] {
        try await env.stores.chats.chats(ownerID: user.id, limit: 50, beforeID: nil)
    }

    @Test func aChannelKeepsItsSecretsSealedAndChecksItsServers() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            try await env.application().test(.router) { client in
                let created = try await Self.createChannel(client, key: key, extra: [
                    "smtpUrl": "smtp://127.0.0.1:2525", "smtpUsername": "mailer", "smtpPassword": "smtp-password-1", "smtpStartTls": "optional",
                ])
                let id = try #require(created["id"] as? Int)
                #expect(created["type"] as? String == "email")
                #expect(created["address"] as? String == "support@shop.example")
                #expect(created["replyDomain"] as? String == "shop.example")
                #expect(created["smtpUrl"] as? String == "smtp://127.0.0.1:2525")
                #expect(created["smtpStartTls"] as? String == "optional")
                #expect((created["webhookUrl"] as? String) == "/api/v1/webhooks/email/\(created["publicId"] as? String ?? "")")
                #expect(Set(created["secretsSet"] as? [String] ?? []) == ["smtpPassword", "webhookPassword", "mailgunSigningKey", "bearerToken"])
                let stored = try #require(try await env.stores.connections.connection(id: Int64(id), ownerID: user.id))
                #expect(!String(decoding: stored.sealedSecrets, as: UTF8.self).contains("smtp-password-1"), "sealed at rest")
                #expect(!stored.settings.values.contains { $0.contains("smtp-password-1") })
                try await client.execute(uri: "/api/v1/channels/\(id)", method: .get, headers: .auth(key)) { response in
                    #expect(response.status == .ok)
                    #expect(!response.text.contains("smtp-password-1"))
                }
                let (_, strangerKey) = try await env.makeUser()
                try await client.execute(uri: "/api/v1/channels/\(id)", method: .get, headers: .auth(strangerKey)) { #expect($0.status == .notFound) }
                for (field, value) in [("smtpUrl", "http://mail.example.com"), ("smtpUrl", "smtp://user:pw@mail.example.com"), ("address", "not an address"),
                                       ("imapUrl", "pop3://mail.example.com"), ("smtpStartTls", "sometimes")] {
                    var body: [String: Any] = ["type": "email", "name": "x", "address": "a@shop.example"]
                    body[field] = value
                    try await client.execute(uri: "/api/v1/channels", method: .post, headers: .auth(key), body: jsonBody(body)) { response in
                        #expect(response.status == .badRequest, "\(field)=\(value)")
                        #expect(response.errorCode == "invalid_field")
                    }
                }
                // Email fields on a WhatsApp channel are refused, not ignored.
                try await client.execute(uri: "/api/v1/channels", method: .post, headers: .auth(key), body: jsonBody([
                    "type": "whatsapp", "name": "wa", "phoneNumberId": "1", "accessToken": "a", "appSecret": "b", "verifyToken": "c", "imapStartTls": "AAA",
                ])) { response in
                    #expect(response.status == .badRequest)
                    #expect(response.errorCode == "invalid_field")
                }
                try await client.execute(
                    uri: "/api/v1/channels/\(id)", method: .patch, headers: .auth(key), body: jsonBody(["smtpPassword": "rotated-smtp-pw", "fromName": "Help"])
                ) { response in
                    #expect(response.status == .ok)
                    #expect(response.json["fromName"] as? String == "Help")
                }
                let rotated = try EmailConnection(
                    try #require(try await env.stores.connections.connection(id: Int64(id), ownerID: user.id)), secrets: env.dependencies().secrets)
                #expect(rotated.smtpPassword == "rotated-smtp-pw")
                #expect(rotated.bearerToken == Self.bearer, "secrets not given are kept")
            }
        }
    }

    @Test func unauthenticatedMailIsRefusedAndStoresNothing() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            try await env.application().test(.router) { client in
                let url = try #require(try await Self.createChannel(client, key: key)["webhookUrl"] as? String)
                let postmark = #"{"From":"ada@example.com","Subject":"hi","TextBody":"hello","Headers":[{"Name":"Message-ID","Value":"<p1@example.com>"}]}"#
                let unsigned = try await client.execute(uri: url, method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: postmark))
                #expect(unsigned.status == .unauthorized)
                #expect(unsigned.errorCode == "unauthorized")
                let wrongPassword = try await client.execute(
                    uri: url, method: .post,
                    headers: [.contentType: "application/json", .authorization: "Basic " + Data("postmark:guess".utf8).base64EncodedString()],
                    body: ByteBuffer(string: postmark))
                #expect(wrongPassword.status == .unauthorized)
                #expect(try await Self.postRaw(client, url, Self.raw(id: "r1@example.com"), token: "guess").status == .unauthorized)
                let forged = Self.mailgunBody([("from", "ada@example.com"), ("subject", "hi"), ("body-plain", "hello")], token: "tok-forged", key: "not-the-key")
                let forgedResponse = try await Self.postForm(client, url, forged)
                #expect(forgedResponse.status == .unauthorized)
                let stale = Self.mailgunBody([("from", "ada@example.com"), ("body-plain", "hello")], token: "tok-stale", timestamp: Date().addingTimeInterval(-600))
                #expect(try await Self.postForm(client, url, stale).status == .unauthorized)
                let unknown = try await Self.postRaw(client, "/api/v1/webhooks/email/ch_00000000000000000000000000000000", Self.raw(id: "r2@example.com"))
                #expect(unknown.status == .notFound)
                let unsupported = try await client.execute(
                    uri: url, method: .post, headers: [.contentType: "image/png", .authorization: "Bearer \(Self.bearer)"], body: ByteBuffer(string: "x"))
                #expect(unsupported.status == .badRequest)
                #expect(try await chats(env, user).isEmpty, "nothing stored")
                #expect(try await TurnTestEnvironment.queuedTurnIDs(env.redis).isEmpty, "nothing queued")
            }
        }
    }

    @Test func everyFormatIsStoredOnceAndAReplayedMailgunTokenIsRefused() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            try await env.application().test(.router) { client in
                let url = try #require(try await Self.createChannel(client, key: key)["webhookUrl"] as? String)
                // Postmark-style JSON with basic auth.
                let postmark = #"""
                    {"From":"Ada <ada@example.com>","FromFull":{"Email":"ada@example.com","Name":"Ada"},"To":"support@shop.example",
                     "Subject":"Invoice","MessageID":"pm-1","TextBody":"Where is my invoice?","HtmlBody":"<p>Where is my invoice?</p>",
                     "Headers":[{"Name":"Message-ID","Value":"<pm-msg-1@example.com>"}]}
                    """#
                let basic = "Basic " + Data("postmark:\(Self.webhookPassword)".utf8).base64EncodedString()
                let first = try await client.execute(
                    uri: url, method: .post, headers: [.contentType: "application/json", .authorization: basic], body: ByteBuffer(string: postmark))
                #expect(first.status == .ok, "\(first.text)")
                #expect(first.json["accepted"] as? Int == 1)
                // The same mail again (Postmark retries): stored once.
                let again = try await client.execute(
                    uri: url, method: .post, headers: [.contentType: "application/json", .authorization: basic], body: ByteBuffer(string: postmark))
                #expect(again.json["duplicates"] as? Int == 1)

                // Mailgun-style urlencoded, signed; the same token a second time is a replay.
                let form = Self.mailgunBody(
                    [("sender", "bob@example.org"), ("from", "Bob <bob@example.org>"), ("subject", "Delivery"), ("body-plain", "When does it ship?"),
                     ("Message-Id", "<mg-1@example.org>")], token: "mailgun-token-once")
                let signed = try await Self.postForm(client, url, form)
                #expect(signed.status == .ok, "\(signed.text)")
                #expect(signed.json["accepted"] as? Int == 1)
                let replayed = try await Self.postForm(client, url, form)
                #expect(replayed.status == .unauthorized)
                #expect(replayed.errorMessage?.contains("accepted before") == true)

                // Raw MIME with the bearer token.
                let raw = try await Self.postRaw(client, url, Self.raw(from: "Cy <cy@example.net>", subject: "Refund", id: "raw-1@example.net", body: "I want a refund."))
                #expect(raw.json["accepted"] as? Int == 1)
                let rawAgain = try await Self.postRaw(client, url, Self.raw(from: "Cy <cy@example.net>", subject: "Refund", id: "raw-1@example.net", body: "I want a refund."))
                #expect(rawAgain.json["duplicates"] as? Int == 1)

                let all = try await chats(env, user)
                #expect(all.count == 3)
                #expect(Set(all.map(\.title)) == ["Invoice", "Delivery", "Refund"])
                #expect(try await TurnTestEnvironment.queuedTurnIDs(env.redis).count == 3)
                let ids = try await TurnTestEnvironment.queuedTurnIDs(env.redis)
                let record = try #require(try await env.stores.emails.email(messageID: ids[0]))
                #expect(record.rfcMessageID == "pm-msg-1@example.com")
                #expect(record.fromAddress == "ada@example.com")
                #expect(record.subject == "Invoice")
            }
        }
    }

    @Test func mailThreadsByReferencesAndReplyAddressButOnlyForItsSender() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            try await env.application().test(.router) { client in
                let url = try #require(try await Self.createChannel(client, key: key)["webhookUrl"] as? String)
                let first = try await Self.postRaw(client, url, Self.raw(id: "t1@example.com"))
                let firstID = try #require((first.json["messageIds"] as? [Int])?.first)
                let chat = try #require(try await env.stores.messages.message(id: Int64(firstID))).chatID
                // A reply naming the first mail joins its chat, with the quote stripped and kept.
                let reply = try await Self.postRaw(client, url, Self.raw(
                    subject: "Re: Order 42", id: "t2@example.com", inReplyTo: "t1@example.com", references: "<t1@example.com>",
                    body: "Any news?\r\n\r\nOn Fri, 4 Dec 2026, Ada wrote:\r\n> Where is my order?"))
                let replyMessage = try #require(try await env.stores.messages.message(id: try EmailConversationTests.messageID(reply)))
                #expect(replyMessage.chatID == chat)
                #expect(replyMessage.content == "Any news?")
                #expect(try await env.stores.emails.email(messageID: replyMessage.id)?.fullText?.contains("> Where is my order?") == true)
                // Someone else replying to the same Message-ID starts a conversation of their own.
                let other = try await Self.postRaw(client, url, Self.raw(
                    from: "eve@example.org", subject: "Re: Order 42", id: "t3@example.org", inReplyTo: "t1@example.com"))
                let otherMessage = try #require(try await env.stores.messages.message(id: try EmailConversationTests.messageID(other)))
                #expect(otherMessage.chatID != chat)
                // A new subject from the same sender without references is a new chat.
                let fresh = try await Self.postRaw(client, url, Self.raw(subject: "Another question", id: "t4@example.com"))
                let freshMessage = try #require(try await env.stores.messages.message(id: try EmailConversationTests.messageID(fresh)))
                #expect(freshMessage.chatID != chat)
                // Mail to the thread's reply+token address joins it even without threading headers.
                let threadKey = try #require(try await env.stores.chats.chat(id: chat, ownerID: user.id)?.externalThreadKey)
                let token = try #require(EmailConnection.parseThreadKey(threadKey)?.token)
                let byAddress = try await Self.postRaw(client, url, Self.raw(to: "reply+\(token)@shop.example", subject: "something else", id: "t5@example.com"))
                let byAddressMessage = try #require(try await env.stores.messages.message(id: try EmailConversationTests.messageID(byAddress)))
                #expect(byAddressMessage.chatID == chat)
                #expect(try await chats(env, user).count == 3)
            }
        }
    }

    @Test func autoRepliesAndBouncesAreStoredButNeverAnswered() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await env.application().test(.router) { client in
                let url = try #require(try await Self.createChannel(client, key: key)["webhookUrl"] as? String)
                let vacation = try await Self.postRaw(client, url, Self.raw(
                    subject: "Out of office", id: "ooo@example.com", extraHeaders: "Auto-Submitted: auto-replied\r\n", body: "I am away until Monday."))
                #expect(vacation.json["ignored"] as? Int == 1)
                let xauto = try await Self.postRaw(client, url, Self.raw(id: "xa@example.com", extraHeaders: "X-Autoreply: yes\r\n"))
                #expect(xauto.json["ignored"] as? Int == 1)
                let bounce = try await Self.postRaw(client, url, Self.raw(from: "MAILER-DAEMON@mx.example.com", subject: "Undelivered Mail", id: "b@mx.example.com"))
                #expect(bounce.json["ignored"] as? Int == 1)
                for id in (vacation.json["messageIds"] as? [Int] ?? []) + (bounce.json["messageIds"] as? [Int] ?? []) {
                    let message = try #require(try await env.stores.messages.message(id: Int64(id)))
                    #expect(message.status == .cancelled)
                    #expect(message.error?.hasPrefix("ignored:") == true)
                    #expect(try await env.stores.emails.email(messageID: message.id)?.ignoredReason != nil)
                }
                #expect(try await TurnTestEnvironment.queuedTurnIDs(env.redis).isEmpty, "no turn for a machine's mail")
            }
        }
    }

    @Test func malformedMailIsStoredAsTextWithAWarning() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await env.application().test(.router) { client in
                let url = try #require(try await Self.createChannel(client, key: key)["webhookUrl"] as? String)
                let broken = "From: ada@example.com\r\nSubject: broken\r\nMessage-ID: <broken@example.com>\r\nContent-Type: multipart/mixed\r\n"
                    + "Content-Transfer-Encoding: base64\r\n\r\nthis is not what it claims ===\r\n\u{1}\u{2}\r\n"
                let response = try await Self.postRaw(client, url, broken)
                #expect(response.status == .ok)
                let id = try #require((response.json["messageIds"] as? [Int])?.first)
                let message = try #require(try await env.stores.messages.message(id: Int64(id)))
                #expect(message.content.contains("this is not what it claims"))
                #expect(try await env.stores.emails.email(messageID: message.id)?.warnings.isEmpty == false)
                // Bytes that are not a mail at all.
                let garbage = try await client.execute(
                    uri: url, method: .post, headers: [.contentType: "message/rfc822", .authorization: "Bearer \(Self.bearer)"],
                    body: ByteBuffer(bytes: [0xFF, 0xFE, 0x00, 0x41, 0x0A, 0x0A, 0x9F, 0x42]))
                #expect(garbage.status == .ok)
                let empty = try await client.execute(
                    uri: url, method: .post, headers: [.contentType: "message/rfc822", .authorization: "Bearer \(Self.bearer)"], body: ByteBuffer())
                #expect(empty.status == .badRequest)
            }
        }
    }

    @Test func aSignedMailgunMultipartPostStoresItsAttachments() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            let directory = NSTemporaryDirectory() + "sb-email-files-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try await env.application(files: FilesConfiguration(storageDirectory: directory)).test(.router) { client in
                let url = try #require(try await Self.createChannel(client, key: key)["webhookUrl"] as? String)
                let stamp = String(Int(Date().timeIntervalSince1970))
                let token = "multipart-token-1"
                var body = ""
                let fields = [
                    ("sender", "bob@example.org"), ("from", "Bob <bob@example.org>"), ("subject", "Invoice attached"), ("body-plain", "Here it is."),
                    ("message-headers", #"[["Message-Id", "<mp-1@example.org>"], ["Subject", "Invoice attached"]]"#), ("attachment-count", "1"),
                    ("timestamp", stamp), ("token", token), ("signature", EmailInbound.mailgunSignature(timestamp: stamp, token: token, key: Self.signingKey)),
                ]
                for (name, value) in fields { body += "--mgB\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n" }
                body += "--mgB\r\nContent-Disposition: form-data; name=\"attachment-1\"; filename=\"invoice.txt\"\r\nContent-Type: text/plain\r\n\r\nTotal: 42 EUR\r\n--mgB--\r\n"
                let response = try await client.execute(
                    uri: url, method: .post, headers: [.contentType: "multipart/form-data; boundary=mgB"], body: ByteBuffer(string: body))
                #expect(response.status == .ok, "\(response.text)")
                let id = try EmailConversationTests.messageID(response)
                let files = try await env.stores.files.files(messageID: id)
                #expect(files.map(\.name) == ["invoice.txt"])
                #expect(try files.first.map { try String(contentsOfFile: $0.storagePath, encoding: .utf8) } == "Total: 42 EUR")
                #expect(try await env.stores.emails.email(messageID: id)?.rfcMessageID == "mp-1@example.org")
            }
        }
    }

    static func withAttachment(id: String, bytes: Int) -> String {
        var data = [UInt8](repeating: 0, count: bytes)
        for index in data.indices { data[index] = UInt8(truncatingIfNeeded: index &* 31 &+ index >> 8) }
        return "From: ada@example.com\r\nSubject: big file\r\nMessage-ID: <\(id)>\r\nMIME-Version: 1.0\r\n"
            + "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nThe scan is attached.\r\n"
            + "--b1\r\nContent-Type: application/pdf; name=\"scan.pdf\"\r\nContent-Disposition: attachment; filename=\"scan.pdf\"\r\n"
            + "Content-Transfer-Encoding: base64\r\n\r\n" + TransferEncoding.encodeBase64Lines(data) + "\r\n--b1--\r\n"
    }

    @Test func aTenMegabyteAttachmentIsStoredOrRefusedOverTheLimit() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            let directory = NSTemporaryDirectory() + "sb-email-files-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let roomy = APISettings(email: EmailChannelSettings(maxMessageBytes: 20 << 20, maxAttachmentBytes: 12 << 20))
            let tenMB = 10 << 20
            try await env.application(settings: roomy, files: FilesConfiguration(storageDirectory: directory)).test(.router) { client in
                let url = try #require(try await Self.createChannel(client, key: key)["webhookUrl"] as? String)
                let response = try await Self.postRaw(client, url, Self.withAttachment(id: "big@example.com", bytes: tenMB))
                #expect(response.status == .ok, "\(response.text)")
                let id = try #require((response.json["messageIds"] as? [Int])?.first)
                let files = try await env.stores.files.files(messageID: Int64(id))
                #expect(files.map(\.name) == ["scan.pdf"])
                #expect(files.first?.size == Int64(tenMB))
                let onDisk = try #require(files.first.map { try Data(contentsOf: URL(fileURLWithPath: $0.storagePath)) })
                #expect(onDisk.count == tenMB)
                #expect(try await env.stores.messages.messageContext(id: Int64(id), historyLimit: 0)?.attachmentCount == 1)
            }
            let tight = APISettings(email: EmailChannelSettings(maxMessageBytes: 20 << 20, maxAttachmentBytes: 1 << 20))
            try await env.application(settings: tight, files: FilesConfiguration(storageDirectory: directory)).test(.router) { client in
                let (other, otherKey) = try await env.makeUser()
                let url = try #require(try await Self.createChannel(client, key: otherKey)["webhookUrl"] as? String)
                let response = try await Self.postRaw(client, url, Self.withAttachment(id: "big2@example.com", bytes: tenMB))
                #expect(response.status == .contentTooLarge)
                #expect(response.errorCode == "payload_too_large")
                #expect(try await chats(env, other).isEmpty, "nothing stored")
                _ = user
            }
        }
    }
}
