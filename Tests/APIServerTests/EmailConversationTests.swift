import APIServer
import Channels
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Mail
import NIOCore
import Storage
import SwitchboardCore
import TestSupport
import Testing
import TurnTestSupport

/// Email both ways against real peers on loopback: mail in through the webhook, answered by a
/// worker, replies out over SMTP (libcurl) to aiosmtpd with STARTTLS and AUTH, and the customer's
/// answers threading back into the same chat, Outlook's changed In-Reply-To and an
/// auto-responder included; SMTP refusals sorted into retries and final failures.
@Suite("Email conversations over SMTP", .serialized)
struct EmailConversationTests {
    static func channel(_ client: some TestClientProtocol, key: String, smtp: SMTPRecorder, auth: Bool) async throws -> [String: Any] {
        var extra: [String: Any] = ["smtpUrl": smtp.url, "smtpStartTls": smtp.certificate == nil ? "optional" : "required"]
        if auth {
            extra["smtpUsername"] = "mailer"
            extra["smtpPassword"] = "smtp-pass-123"
        }
        return try await EmailWebhookTests.createChannel(client, key: key, extra: extra)
    }

    func deliveries(_ env: TestEnvironment, smtp: SMTPRecorder) -> ChannelDeliveries {
        var deliveries = ChannelDeliveries.standard
        deliveries.register(EmailReplies(stores: env.stores, secrets: env.dependencies().secrets, messageIDDomain: "sb.shop.example", caFile: smtp.certificate))
        return deliveries
    }

    static func messageID(_ response: TestResponse) throws -> Int64 {
        Int64(try #require((response.json["messageIds"] as? [Int])?.first))
    }

    @Test func threeMailsEachWayStayOneChat() async throws {
        let smtp = try await SMTPRecorder(tls: true, auth: ("mailer", "smtp-pass-123"))
        defer { smtp.stop() }
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            try await env.withWorker(deliveries: deliveries(env, smtp: smtp)) {
                try await env.application().test(.router) { client in
                    let url = try #require(try await Self.channel(client, key: key, smtp: smtp, auth: true)["webhookUrl"] as? String)

                    // 1. The customer writes; the answer goes out from the channel's address.
                    let first = try await EmailWebhookTests.postRaw(client, url, EmailWebhookTests.raw(subject: "Order 42", id: "c1@example.com"))
                    let chat = try #require(try await env.stores.messages.message(id: try Self.messageID(first))).chatID
                    let reply1 = MIMEParser.parse(try await smtp.waitFor(1)[0].data)
                    let sent1 = try smtp.received()[0]
                    #expect(sent1.tls && sent1.authenticated, "STARTTLS and AUTH were used")
                    #expect(sent1.mailFrom == "support@shop.example")
                    #expect(sent1.recipients == ["ada@example.com"])
                    #expect(reply1.from?.address == "support@shop.example")
                    #expect(reply1.from?.name == "Shop Support")
                    #expect(reply1.subject == "Re: Order 42")
                    #expect(reply1.inReplyTo == ["c1@example.com"])
                    #expect(reply1.references == ["c1@example.com"])
                    #expect(reply1.headers["Auto-Submitted"] == "auto-replied")
                    let replyTo = try #require(reply1.replyTo.first?.address)
                    #expect(replyTo.hasPrefix("reply+") && replyTo.hasSuffix("@shop.example"))
                    let id1 = try #require(reply1.messageID)
                    #expect(id1.hasSuffix("@sb.shop.example"))
                    #expect(reply1.text.contains("> Where is my order?"), "the original is quoted")
                    #expect(reply1.html?.contains("<blockquote") == true)

                    // 2. The customer answers the reply (Gmail: In-Reply-To and References).
                    _ = try await EmailWebhookTests.postRaw(client, url, EmailWebhookTests.raw(
                        to: replyTo, subject: "Re: Order 42", id: "c2@example.com", inReplyTo: id1, references: "<c1@example.com> <\(id1)>",
                        body: "It was order 42.\r\n\r\nOn Fri, Shop Support wrote:\r\n> Where is my order?"))
                    let reply2 = MIMEParser.parse(try await smtp.waitFor(2)[1].data)
                    #expect(reply2.subject == "Re: Order 42", "never Re: Re:")
                    #expect(reply2.inReplyTo == ["c2@example.com"])
                    #expect(reply2.references == ["c1@example.com", id1, "c2@example.com"])
                    let id2 = try #require(reply2.messageID)
                    #expect(id2 != id1)

                    // 3. Outlook answers with an In-Reply-To of its own making and no References.
                    _ = try await EmailWebhookTests.postRaw(client, url, EmailWebhookTests.raw(
                        to: "Shop Support <\(replyTo)>", subject: "RE: Order 42", id: "c3@example.com", inReplyTo: "OUTLOOK-REWRITTEN-1@eurprd.outlook.com",
                        body: "Thanks!\r\n\r\n________________________________\r\nFrom: Shop Support <support@shop.example>\r\nSent: Friday\r\n"))
                    let reply3 = MIMEParser.parse(try await smtp.waitFor(3)[2].data)
                    #expect(reply3.subject == "Re: Order 42")

                    // The reply's Message-ID is recorded once the server accepted it.
                    var messages: [Message] = []
                    for _ in 0..<400 {
                        messages = try await env.stores.messages.messages(chatID: chat, ownerID: user.id, limit: 20, beforeID: nil, afterID: 0)
                        if messages.filter({ $0.role == .assistant && $0.externalID != nil }).count == 3 { break }
                        try await Task.sleep(for: .milliseconds(25))
                    }
                    let chats = try await env.stores.chats.chats(ownerID: user.id, limit: 10, beforeID: nil)
                    #expect(chats.map(\.id) == [chat], "one conversation")
                    #expect(messages.map(\.role) == [.user, .assistant, .user, .assistant, .user, .assistant])
                    #expect(messages[4].content == "Thanks!", "the quoted conversation is stripped")
                    #expect(messages.filter { $0.role == .assistant }.compactMap(\.externalID) == [id1, id2, reply3.messageID])

                    // 4. The customer's auto-responder answers the last reply: stored, never answered.
                    let loop = try await EmailWebhookTests.postRaw(client, url, EmailWebhookTests.raw(
                        to: replyTo, subject: "Automatic reply: Re: Order 42", id: "c4-auto@example.com", inReplyTo: reply3.messageID,
                        extraHeaders: "Auto-Submitted: auto-replied\r\nX-Autoreply: yes\r\n", body: "I am out of the office."))
                    #expect(loop.json["ignored"] as? Int == 1)
                    let ignored = try #require(try await env.stores.messages.message(id: try Self.messageID(loop)))
                    #expect(ignored.chatID == chat)
                    #expect(ignored.status == .cancelled)
                    // A person's next mail is answered, and the auto-reply never was.
                    _ = try await EmailWebhookTests.postRaw(client, url, EmailWebhookTests.raw(
                        to: replyTo, subject: "Re: Order 42", id: "c5@example.com", inReplyTo: reply3.messageID, body: "One more thing."))
                    let all = try await smtp.waitFor(4)
                    #expect(all.count == 4)
                    #expect(all.map { MIMEParser.parse($0.data).inReplyTo.first } == ["c1@example.com", "c2@example.com", "c3@example.com", "c5@example.com"])
                }
            }
        }
    }

    @Test func repliesGoOverImplicitTLSWithAuth() async throws {
        let smtp = try await SMTPRecorder(implicitTLS: true, auth: ("mailer", "smtp-pass-123"))
        defer { smtp.stop() }
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await env.application().test(.router) { client in
                let url = try #require(try await Self.channel(client, key: key, smtp: smtp, auth: true)["webhookUrl"] as? String)
                #expect(smtp.url.hasPrefix("smtps://"))
                let reply = try await replyTo(env, client, url: url, from: "ada@example.com", id: "tls1@example.com")
                let runner = DeliveryRunner(messages: env.stores.messages, deliveries: deliveries(env, smtp: smtp))
                #expect(try await runner.run(replyID: reply.id, logger: TestEnvironment.logger) == .delivered)
                let sent = try smtp.received()
                #expect(sent.count == 1)
                #expect(sent.first?.tls == true && sent.first?.authenticated == true)
                #expect(MIMEParser.parse(try #require(sent.first?.data)).inReplyTo == ["tls1@example.com"])
            }
        }
    }

    /// A reply whose delivery is run by hand (no worker), to see how each SMTP answer ends.
    func replyTo(_ env: TestEnvironment, _ client: some TestClientProtocol, url: String, from: String, id: String) async throws -> Message {
        let response = try await EmailWebhookTests.postRaw(client, url, EmailWebhookTests.raw(from: from, id: id))
        let question = try #require(try await env.stores.messages.message(id: try Self.messageID(response)))
        return try await env.stores.messages.insertMessage(NewMessage(
            chatID: question.chatID, ownerID: question.ownerID, role: .assistant, content: "An answer.", status: .completed, channel: .email,
            replyToID: question.id))
    }

    @Test func smtpRefusalsAreFinalAndDeferralsAreRetried() async throws {
        let smtp = try await SMTPRecorder()
        defer { smtp.stop() }
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await env.application().test(.router) { client in
                let url = try #require(try await Self.channel(client, key: key, smtp: smtp, auth: false)["webhookUrl"] as? String)
                let runner = DeliveryRunner(messages: env.stores.messages, deliveries: deliveries(env, smtp: smtp))

                let rejected = try await replyTo(env, client, url: url, from: "reject550@example.com", id: "f1@example.com")
                do {
                    try await runner.run(replyID: rejected.id, logger: TestEnvironment.logger)
                    Issue.record("a 550 must fail the delivery")
                } catch let error as DeliveryError {
                    #expect(error.code == .smtpRejected)
                    #expect(error.message.contains("550 5.1.1"), "the server's reply is kept: \(error.message)")
                }
                let deferred = try await replyTo(env, client, url: url, from: "defer451@example.com", id: "f2@example.com")
                await #expect(throws: SMTPRetryableError.self) { try await runner.run(replyID: deferred.id, logger: TestEnvironment.logger) }

                let fine = try await replyTo(env, client, url: url, from: "ada@example.com", id: "f3@example.com")
                #expect(try await runner.run(replyID: fine.id, logger: TestEnvironment.logger) == .delivered)
                #expect(try smtp.received().count == 1)
                #expect(try await env.stores.messages.message(id: fine.id)?.externalID?.hasSuffix("@sb.shop.example") == true)
                // Delivering it again sends nothing.
                #expect(try await runner.run(replyID: fine.id, logger: TestEnvironment.logger) == .alreadyDelivered)

                // The server is gone: a refused connection is retried.
                smtp.stop()
                let later = try await replyTo(env, client, url: url, from: "ada@example.com", id: "f4@example.com")
                await #expect(throws: SMTPRetryableError.self) { try await runner.run(replyID: later.id, logger: TestEnvironment.logger) }
            }
        }
    }
}
