import Foundation
import Mail
import Testing

/// Raw messages in the shapes real clients send (Gmail, Outlook, Apple Mail, Thunderbird, old
/// Windows clients), parsed without servers.
@Suite("MIME parsing")
struct MIMEParserTests {
    func mail(_ text: String) -> ParsedMail {
        MIMEParser.parse(Array(text.replacingOccurrences(of: "\n", with: "\r\n").utf8))
    }

    @Test func gmailMultipartAlternativePrefersThePlainPart() {
        let parsed = mail("""
            MIME-Version: 1.0
            Date: Thu, 3 Dec 2026 10:12:45 +0100
            Message-ID: <CAF=abc123@mail.gmail.com>
            Subject: Invoice question
            From: Ada Lovelace <ada@example.com>
            To: support@shop.example
            Content-Type: multipart/alternative; boundary="000000000000a1b2c3"

            --000000000000a1b2c3
            Content-Type: text/plain; charset="UTF-8"

            Hello, where is my invoice?

            --000000000000a1b2c3
            Content-Type: text/html; charset="UTF-8"

            <div dir="ltr">Hello, where is my <b>invoice</b>?</div>

            --000000000000a1b2c3--
            """)
        #expect(parsed.text == "Hello, where is my invoice?")
        #expect(parsed.html?.contains("<b>invoice</b>") == true)
        #expect(parsed.subject == "Invoice question")
        #expect(parsed.from == MailAddress(name: "Ada Lovelace", address: "ada@example.com"))
        #expect(parsed.to.map(\.address) == ["support@shop.example"])
        #expect(parsed.messageID == "CAF=abc123@mail.gmail.com")
        #expect(parsed.attachments.isEmpty)
        #expect(parsed.warnings.isEmpty)
    }

    @Test func nestedMixedRelatedAlternativeWithAttachments() {
        let pdf = Array("%PDF-1.4 fake".utf8)
        let parsed = mail("""
            From: "Grace Hopper" <grace@example.org>
            To: support@shop.example
            Subject: Report attached
            Content-Type: multipart/mixed; boundary="outer"

            This is a multi-part message in MIME format.
            --outer
            Content-Type: multipart/related; boundary="rel"

            --rel
            Content-Type: multipart/alternative; boundary="alt"

            --alt
            Content-Type: text/plain; charset=us-ascii
            Content-Transfer-Encoding: 7bit

            See the report.
            --alt
            Content-Type: text/html; charset=us-ascii

            <p>See the report. <img src="cid:logo@x"></p>
            --alt--

            --rel
            Content-Type: image/png
            Content-ID: <logo@x>
            Content-Transfer-Encoding: base64

            iVBORw0KGgo=
            --rel--

            --outer
            Content-Type: application/pdf; name="report.pdf"
            Content-Disposition: attachment; filename="report.pdf"
            Content-Transfer-Encoding: base64

            \(Data(pdf).base64EncodedString())
            --outer--
            """)
        #expect(parsed.text == "See the report.")
        #expect(parsed.attachments.map(\.filename) == ["attachment-1.png", "report.pdf"])
        #expect(parsed.attachments[0].contentID == "logo@x")
        #expect(parsed.attachments[0].data == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        #expect(parsed.attachments[1].data == pdf)
        #expect(parsed.attachments[1].contentType == "application/pdf")
        #expect(parsed.warnings.isEmpty)
    }

    @Test func quotedPrintableInWindows1252() {
        // Outlook on Windows: Windows-1252 with curly quotes and the euro sign, soft line breaks.
        let parsed = mail("""
            From: =?windows-1252?Q?J=FCrgen_M=FCller?= <jm@example.de>
            Subject: =?windows-1252?Q?Preis_=80_100?=
            Content-Type: text/plain; charset="windows-1252"
            Content-Transfer-Encoding: quoted-printable

            =93Gr=FC=DFe=94 aus K=F6ln =96 der Preis ist =80 100, bitte eine l=
            ange Zeile.
            """)
        #expect(parsed.text == "“Grüße” aus Köln – der Preis ist € 100, bitte eine lange Zeile.")
        #expect(parsed.from?.name == "Jürgen Müller")
        #expect(parsed.subject == "Preis € 100")
    }

    @Test func base64InISO88591() {
        let latin1: [UInt8] = Array("Caf".utf8) + [0xE9] + Array(" cr".utf8) + [0xE8] + Array("me br".utf8) + [0xFB] + Array("l".utf8) + [0xE9, 0x65]
        let parsed = mail("""
            Subject: menu
            Content-Type: text/plain; charset=ISO-8859-1
            Content-Transfer-Encoding: base64

            \(Data(latin1).base64EncodedString())
            """)
        #expect(parsed.text == "Café crème brûlée")
    }

    @Test func encodedWordsAndFoldedHeaders() {
        let parsed = mail("""
            Subject: =?UTF-8?B?w5xiZXIgZGllIA==?=
             =?UTF-8?Q?Rechnung_=E2=9C=93?= and more
            From: =?UTF-8?Q?Bj=C3=B6rk?= <bjork@example.is>
            References: <a@x>
             <b@x>
            \t<c@x>
            In-Reply-To: <c@x> (from Björk)

            body
            """)
        #expect(parsed.subject == "Über die Rechnung ✓ and more")
        #expect(parsed.from?.name == "Björk")
        #expect(parsed.references == ["a@x", "b@x", "c@x"])
        #expect(parsed.inReplyTo == ["c@x"])
        #expect(parsed.threadCandidates == ["c@x", "b@x", "a@x"])
    }

    @Test func htmlOnlyMailBecomesText() {
        let parsed = mail("""
            Subject: html only
            Content-Type: text/html; charset=utf-8

            <html><head><style>p{color:red}</style><title>x</title></head><body>
            <p>Hello&nbsp;there,</p><p>your order <b>#42</b> &amp; receipt:</p><ul><li>one</li><li>two</li></ul>
            <script>alert(1)</script>Thanks<br>Shop</body></html>
            """)
        #expect(parsed.text == "Hello there,\n\nyour order #42 & receipt:\n\n- one\n- two\nThanks\nShop")
        #expect(parsed.html != nil)
    }

    @Test func rfc2231FileNamesAndInlineTextAttachments() {
        let parsed = mail("""
            Subject: files
            Content-Type: multipart/mixed; boundary=b

            --b
            Content-Type: text/plain

            two files
            --b
            Content-Type: application/octet-stream
            Content-Disposition: attachment; filename*=UTF-8''na%C3%AFve%20plan.txt

            abc
            --b
            Content-Type: text/plain; name="notes.txt"
            Content-Disposition: inline; filename*0="long-"; filename*1="name.txt"

            inline notes
            --b--
            """)
        #expect(parsed.text == "two files")
        #expect(parsed.attachments.map(\.filename) == ["naïve plan.txt", "long-name.txt"])
        #expect(parsed.attachments[1].data == Array("inline notes".utf8))
    }

    @Test func malformedMailIsReadAsTextWithWarnings() {
        let noBoundary = mail("""
            Subject: broken
            Content-Type: multipart/mixed

            just some text
            """)
        #expect(noBoundary.text == "just some text")
        #expect(!noBoundary.warnings.isEmpty)

        let unclosed = mail("""
            Subject: cut short
            Content-Type: multipart/alternative; boundary="zz"

            --zz
            Content-Type: text/plain

            the beginning
            """)
        #expect(unclosed.text == "the beginning")
        #expect(unclosed.warnings.contains { $0.contains("not closed") })

        let garbage = MIMEParser.parse([0xFF, 0xFE, 0x00, 0x41, 0x0A, 0x0A, 0x42])
        #expect(!garbage.warnings.isEmpty)

        let badBase64 = mail("""
            Content-Type: text/plain; charset=klingon-1
            Content-Transfer-Encoding: base64

            SGVsbG8*gd29ybGQ
            """)
        #expect(badBase64.text.hasPrefix("Hello"))
        #expect(badBase64.warnings.count == 2)
    }

    @Test func bareLFAndNoMIMEHeaders() {
        let parsed = MIMEParser.parse(Array("From: a@b.c\nSubject: plain\n\nline one\nline two\n".utf8))
        #expect(parsed.text == "line one\nline two")
        #expect(parsed.from?.address == "a@b.c")
    }

    @Test func eightBitHeadersAndBodyWithoutCharset() {
        var bytes = Array("Subject: Gr".utf8) + [0xFC, 0xDF, 0x65] + Array("\r\n\r\n".utf8)
        bytes += Array("Gr".utf8) + [0xFC, 0xDF, 0x65]
        let parsed = MIMEParser.parse(bytes)
        #expect(parsed.subject == "Grüße")
        #expect(parsed.text == "Grüße")
    }

    @Test func forwardedMessagesAndReportsAreFiles() {
        let parsed = mail("""
            From: MAILER-DAEMON@mx.example.net
            Subject: Undelivered Mail Returned to Sender
            Auto-Submitted: auto-replied
            Content-Type: multipart/report; report-type=delivery-status; boundary="r"

            --r
            Content-Type: text/plain

            I'm sorry to have to inform you that your message could not be delivered.
            --r
            Content-Type: message/delivery-status

            Reporting-MTA: dns; mx.example.net
            --r
            Content-Type: message/rfc822

            From: support@shop.example
            Subject: Re: hello

            our answer
            --r--
            """)
        #expect(parsed.automatic == .autoSubmitted)
        #expect(parsed.attachments.map(\.contentType) == ["message/delivery-status", "message/rfc822"])
        #expect(parsed.text.hasPrefix("I'm sorry"))
    }

    @Test func deeplyNestedMultipartsStopAtTheLimit() {
        var text = "Subject: deep\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
        for level in 1...(MIMEParser.maxDepth + 3) { text += "--b\(level - 1)\r\nContent-Type: multipart/mixed; boundary=b\(level)\r\n\r\n" }
        text += "--b\(MIMEParser.maxDepth + 3)\r\nContent-Type: text/plain\r\n\r\ndeep text\r\n"
        let parsed = MIMEParser.parse(Array(text.utf8))
        #expect(parsed.warnings.contains { $0.contains("deeper") })
    }
}
