import Channels
import Foundation
import Mail
import Storage
import SwitchboardCore
import Testing

/// Email's adapter and sender logic, without servers: each webhook format's authentication
/// checked before anything is read, the formats read into one mail, reply addresses and tokens,
/// and the reply as it is sent.
@Suite("Email channel logic")
struct EmailTests {
    let connection = EmailConnection(
        id: 7, ownerID: 3, address: "support@shop.example", fromName: "Shop", webhookUsername: "postmark", webhookPassword: "pm-secret",
        mailgunSigningKey: "mg-key", bearerToken: "raw-token")

    func delivery(_ format: EmailWebhookFormat, headers: [String: String], body: String, at date: Date = Date()) -> EmailDelivery {
        EmailDelivery(request: InboundRequest(method: "POST", path: "/x", headers: headers, body: Array(body.utf8)), connection: connection, format: format, receivedAt: date)
    }

    static let postmarkJSON = """
        {"From":"Ada <ada@example.com>","FromFull":{"Email":"ada@example.com","Name":"Ada","MailboxHash":""},
         "To":"support@shop.example","Subject":"Invoice","MessageID":"pm-1","TextBody":"Where is my invoice?",
         "HtmlBody":"<p>Where is my invoice?</p>","OriginalRecipient":"support@shop.example",
         "Headers":[{"Name":"Message-ID","Value":"<abc@mail.example.com>"},{"Name":"In-Reply-To","Value":"<sb.1.2@shop.example>"}],
         "Attachments":[{"Name":"a.txt","Content":"aGVsbG8=","ContentType":"text/plain","ContentLength":5}]}
        """

    @Test func postmarkNeedsTheChannelsBasicAuth() throws {
        let adapter = EmailInbound()
        let good = "Basic " + Data("postmark:pm-secret".utf8).base64EncodedString()
        let bad = "Basic " + Data("postmark:guess".utf8).base64EncodedString()
        #expect(throws: SwitchboardError.self) { try adapter.verify(delivery(.postmark, headers: ["Content-Type": "application/json"], body: Self.postmarkJSON)) }
        #expect(throws: SwitchboardError.self) { try adapter.verify(delivery(.postmark, headers: ["Authorization": bad], body: Self.postmarkJSON)) }
        let payload = delivery(.postmark, headers: ["Authorization": good], body: Self.postmarkJSON)
        try adapter.verify(payload)
        let mail = try #require(try adapter.mails(in: payload).first)
        #expect(mail.mail.from?.address == "ada@example.com")
        #expect(mail.mail.messageID == "abc@mail.example.com")
        #expect(mail.externalID == "abc@mail.example.com")
        #expect(mail.mail.inReplyTo == ["sb.1.2@shop.example"])
        #expect(mail.mail.text == "Where is my invoice?")
        #expect(mail.mail.attachments.map(\.data) == [Array("hello".utf8)])
    }

    func mailgunForm(timestamp: String, token: String, signature: String, extra: String = "") -> String {
        "sender=ada%40example.com&from=Ada+%3Cada%40example.com%3E&recipient=reply%2Babc%40shop.example&subject=Hello+there"
            + "&body-plain=Hi%21%0A%0AOn+Mon+Ada+wrote%3A%0A%3E+old&Message-Id=%3Cmg-1%40example.com%3E"
            + "&timestamp=\(timestamp)&token=\(token)&signature=\(signature)" + extra
    }

    @Test func mailgunSignaturesAreCheckedWithTheirAge() throws {
        let adapter = EmailInbound()
        let now = Date()
        let timestamp = String(Int(now.timeIntervalSince1970))
        let token = "f3a1c9e0b2d44e7d9a5b"
        let signature = EmailInbound.mailgunSignature(timestamp: timestamp, token: token, key: "mg-key")
        let headers = ["Content-Type": "application/x-www-form-urlencoded"]
        let payload = delivery(.mailgun, headers: headers, body: mailgunForm(timestamp: timestamp, token: token, signature: signature), at: now)
        try adapter.verify(payload)
        #expect(try adapter.mailgunToken(in: payload) == token)
        let mail = try #require(try adapter.mails(in: payload).first)
        #expect(mail.mail.subject == "Hello there")
        #expect(mail.mail.newText == "Hi!")
        #expect(mail.mail.text.contains("> old"))
        #expect(mail.envelopeRecipients == ["reply+abc@shop.example"])

        let forged = EmailInbound.mailgunSignature(timestamp: timestamp, token: token, key: "another key")
        #expect(throws: SwitchboardError.self) {
            try adapter.verify(delivery(.mailgun, headers: headers, body: mailgunForm(timestamp: timestamp, token: token, signature: forged), at: now))
        }
        // Signed correctly, but six minutes old.
        let old = String(Int(now.timeIntervalSince1970) - 360)
        let oldSignature = EmailInbound.mailgunSignature(timestamp: old, token: token, key: "mg-key")
        #expect(throws: SwitchboardError.self) {
            try adapter.verify(delivery(.mailgun, headers: headers, body: mailgunForm(timestamp: old, token: token, signature: oldSignature), at: now))
        }
    }

    @Test func mailgunMultipartCarriesAttachments() throws {
        let now = Date()
        let timestamp = String(Int(now.timeIntervalSince1970))
        let signature = EmailInbound.mailgunSignature(timestamp: timestamp, token: "tok", key: "mg-key")
        var body = ""
        for (name, value) in [("from", "bob@example.org"), ("subject", "Files"), ("body-plain", "see attached"), ("timestamp", timestamp), ("token", "tok"), ("signature", signature)] {
            body += "--XyZ\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n"
        }
        body += "--XyZ\r\nContent-Disposition: form-data; name=\"attachment-1\"; filename=\"notes.txt\"\r\nContent-Type: text/plain\r\n\r\nline 1\r\nline 2\r\n--XyZ--\r\n"
        let payload = delivery(.mailgun, headers: ["Content-Type": "multipart/form-data; boundary=XyZ"], body: body, at: now)
        let mails = try EmailInbound().accept(payload)
        #expect(mails.count == 1)
        let mail = try #require(try EmailInbound().mails(in: payload).first).mail
        #expect(mail.attachments.map(\.filename) == ["notes.txt"])
        #expect(mail.attachments.first?.data == Array("line 1\r\nline 2".utf8))
        #expect(mail.text == "see attached")
    }

    @Test func rawMIMENeedsTheBearerToken() throws {
        let adapter = EmailInbound()
        let raw = "From: a@b.example\r\nSubject: raw\r\nMessage-ID: <r1@b.example>\r\nAuto-Submitted: auto-replied\r\n\r\nI am away.\r\n"
        #expect(throws: SwitchboardError.self) { try adapter.verify(delivery(.rawMIME, headers: ["Authorization": "Bearer nope"], body: raw)) }
        let messages = try adapter.accept(delivery(.rawMIME, headers: ["Authorization": "Bearer raw-token"], body: raw))
        #expect(messages.count == 1)
        #expect(messages[0].externalID == "r1@b.example")
        #expect(messages[0].ignoredReason == "auto_submitted")
        #expect(messages[0].ownerID == 3)
    }

    @Test func formatsFollowTheContentType() {
        #expect(EmailWebhookFormat.of(contentType: "application/json; charset=utf-8") == .postmark)
        #expect(EmailWebhookFormat.of(contentType: "multipart/form-data; boundary=x") == .mailgun)
        #expect(EmailWebhookFormat.of(contentType: "application/x-www-form-urlencoded") == .mailgun)
        #expect(EmailWebhookFormat.of(contentType: "message/rfc822") == .rawMIME)
        #expect(EmailWebhookFormat.of(contentType: "image/png") == nil)
    }

    @Test func replyAddressesAndThreadKeys() {
        let token = EmailConnection.newReplyToken()
        #expect(token.count == 32)
        #expect(connection.replyAddress(token: token) == "reply+\(token)@shop.example")
        #expect(connection.replyToken(in: "Reply+\(token.uppercased())@SHOP.example") == token)
        #expect(connection.replyToken(in: "reply+\(token)@elsewhere.example") == nil)
        #expect(connection.replyToken(in: "reply+short@shop.example") == nil)
        let key = EmailConnection.threadKey(connectionID: 7, token: token)
        #expect(EmailConnection.parseThreadKey(key)?.token == token)
        #expect(EmailConnection.parseThreadKey("wa:7:123") == nil)
    }

    @Test func aReplyThreadsUnderTheOriginal() {
        let original = EmailRecord(
            messageID: 10, ownerID: 3, chatID: 4, connectionID: 7, direction: .inbound, rfcMessageID: "abc@mail.example.com",
            fromAddress: "ada@example.com", fromName: "Ada", toAddress: "support@shop.example", subject: "RE: Invoice",
            references: ["root@mail.example.com"], sentDate: "Thu, 3 Dec 2026 10:12:45 +0100", fullText: "Where is it?\n\n> older")
        let reply = Message(id: 11, chatID: 4, ownerID: 3, replyToID: 10, role: .assistant, content: "It is attached.", status: .completed, channel: .email, createdAt: Date(timeIntervalSince1970: 1_000), updatedAt: Date())
        let mail = EmailReplies.compose(reply: reply, original: original, connection: connection, token: "0123456789abcdef0123456789abcdef", domain: "shop.example")
        #expect(mail.subject == "Re: Invoice")
        #expect(mail.from.address == "support@shop.example")
        #expect(mail.replyTo?.address == "reply+0123456789abcdef0123456789abcdef@shop.example")
        #expect(mail.inReplyTo == "abc@mail.example.com")
        #expect(mail.references == ["root@mail.example.com", "abc@mail.example.com"])
        #expect(mail.messageID == "sb.11.1000000@shop.example")
        #expect(mail.autoSubmitted == "auto-replied")
        #expect(mail.text.hasPrefix("It is attached.\n\nOn Thu, 3 Dec 2026 10:12:45 +0100, Ada <ada@example.com> wrote:\n> Where is it?"))
        #expect(mail.html?.contains("<blockquote") == true)
    }

    @Test func smtpFailuresAreSortedForTheQueue() {
        let permanent = SMTPSender.classify(CurlFailure(code: 55, responseCode: 550, message: "Failed sending data", serverReply: "550 5.1.1 User unknown"))
        #expect((permanent as? DeliveryError)?.code == .smtpRejected)
        #expect((permanent as? DeliveryError)?.message.contains("550 5.1.1 User unknown") == true)
        let transient = SMTPSender.classify(CurlFailure(code: 55, responseCode: 451, message: "x", serverReply: "451 try again"))
        #expect(transient is SMTPRetryableError)
        let refused = SMTPSender.classify(CurlFailure(code: 7, responseCode: 0, message: "Couldn't connect", serverReply: ""))
        #expect(refused is SMTPRetryableError)
    }
}
