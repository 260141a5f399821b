import Foundation
import Mail
import Testing

/// Quoted replies, machine-written mail, reply subjects and the replies Switchboard writes.
@Suite("Mail replies and threading")
struct MailThreadingLogicTests {
    @Test func gmailQuoteIsStripped() {
        let text = """
            Yes, the second one please.

            On Thu, Dec 3, 2026 at 10:15 AM Support <support@shop.example>
            wrote:

            > Which of the two orders do you mean?
            >
            > Ada wrote:
            """
        #expect(QuotedReply.strip(text) == "Yes, the second one please.")
    }

    @Test func outlookQuoteIsStripped() {
        let text = """
            Thanks, that works.

            Regards
            Bob

            ________________________________
            From: Support <support@shop.example>
            Sent: Thursday, December 3, 2026 10:20 AM
            To: Bob <bob@example.com>
            Subject: RE: order
            """
        #expect(QuotedReply.strip(text) == "Thanks, that works.\n\nRegards\nBob")
        let classic = "ok\n\n-----Original Message-----\nFrom: x\nold"
        #expect(QuotedReply.strip(classic) == "ok")
        let german = "Danke!\n\nAm 03.12.2026 um 10:00 schrieb Support <s@x.de>:\n> alt"
        #expect(QuotedReply.strip(german) == "Danke!")
    }

    @Test func bottomQuotingAndQuoteOnlyMail() {
        #expect(QuotedReply.strip("> earlier\n> more\n\nmy answer below\n") == "> earlier\n> more\n\nmy answer below")
        #expect(QuotedReply.strip("answer\n\n> earlier\n> more\n") == "answer")
        #expect(QuotedReply.strip("> only a quote") == "> only a quote")
    }

    @Test func machineWrittenMailIsRecognised() {
        func reason(_ headers: [(String, String)], from: String = "someone@example.com") -> AutomaticMail? {
            AutomaticMailDetector.reason(headers: MailHeaders(headers.map { MailHeader(name: $0.0, value: $0.1) }), from: MailAddress(address: from))
        }
        #expect(reason([("Auto-Submitted", "auto-replied")]) == .autoSubmitted)
        #expect(reason([("Auto-Submitted", "auto-generated")]) == .autoSubmitted)
        #expect(reason([("Auto-Submitted", "no")]) == nil)
        #expect(reason([("X-Autoreply", "yes")]) == .autoReply)
        #expect(reason([("Precedence", "auto_reply")]) == .autoReply)
        #expect(reason([("Content-Type", "multipart/report; report-type=delivery-status; boundary=x")]) == .bounce)
        #expect(reason([], from: "MAILER-DAEMON@mx.example.net") == .bounce)
        #expect(reason([("Subject", "hello")]) == nil)
    }

    @Test func replySubjectsNeverStackRe() {
        #expect(MailComposer.replySubject("Invoice") == "Re: Invoice")
        #expect(MailComposer.replySubject("Re: Invoice") == "Re: Invoice")
        #expect(MailComposer.replySubject("RE: re: Re[2]: AW: Invoice") == "Re: Invoice")
        #expect(MailComposer.replySubject("") == "Re: (no subject)")
        #expect(MailComposer.replySubject("Regarding taxes") == "Re: Regarding taxes")
    }

    @Test func referencesGrowByTheParent() {
        #expect(MailComposer.references(parent: ["a@x", "b@x"], parentID: "c@x") == ["a@x", "b@x", "c@x"])
        #expect(MailComposer.references(parent: ["a@x", "c@x"], parentID: "c@x") == ["a@x", "c@x"])
        let long = (0..<30).map { "m\($0)@x" }
        let capped = MailComposer.references(parent: long, parentID: "new@x", limit: 5)
        #expect(capped == ["m0@x", "m27@x", "m28@x", "m29@x", "new@x"])
    }

    @Test func aComposedReplyParsesBackWithItsThreadingHeaders() {
        let body = MailComposer.replyBody(
            answer: "Your invoice is attached to order #42 — it costs 12 €.", original: "Where is my invoice?\nThanks",
            originalFrom: MailAddress(name: "Ada", address: "ada@example.com"), originalDate: "Thu, 3 Dec 2026 10:12:45 +0100")
        let mail = OutgoingMail(
            from: MailAddress(name: "Shop Support", address: "support@shop.example"), to: [MailAddress(address: "ada@example.com")],
            replyTo: MailAddress(address: "reply+tok123@shop.example"), subject: MailComposer.replySubject("Re: Invoice für Café"),
            messageID: "m1@switchboard.local", inReplyTo: "CAF=abc@mail.gmail.com", references: ["CAF=abc@mail.gmail.com"],
            text: body.text, html: body.html)
        let raw = mail.render()
        #expect(zip(raw, raw.dropFirst()).allSatisfy { $0.1 != 0x0A || $0.0 == 0x0D })  // CRLF line ends only
        let parsed = MIMEParser.parse(raw)
        #expect(parsed.subject == "Re: Invoice für Café")
        #expect(parsed.messageID == "m1@switchboard.local")
        #expect(parsed.inReplyTo == ["CAF=abc@mail.gmail.com"])
        #expect(parsed.references == ["CAF=abc@mail.gmail.com"])
        #expect(parsed.replyTo.map(\.address) == ["reply+tok123@shop.example"])
        #expect(parsed.headers["Auto-Submitted"] == "auto-replied")
        #expect(parsed.automatic == .autoSubmitted)
        #expect(parsed.text.hasPrefix("Your invoice is attached to order #42 — it costs 12 €."))
        #expect(parsed.text.contains("> Where is my invoice?"))
        #expect(parsed.newText == "Your invoice is attached to order #42 — it costs 12 €.")
        #expect(parsed.html?.contains("<blockquote") == true)
        #expect(parsed.warnings.isEmpty)
    }

    @Test func addressListsWithQuotesCommentsAndGroups() {
        let list = MailAddresses.parse(#""Doe, Jane" <jane@x.org>, bob@y.org (Bob), Team: a@z.org, b@z.org;, <c@w.org>"#)
        #expect(list.map(\.address) == ["jane@x.org", "bob@y.org", "a@z.org", "b@z.org", "c@w.org"])
        #expect(list[0].name == "Doe, Jane")
        #expect(list[1].name == "Bob")
    }
}
