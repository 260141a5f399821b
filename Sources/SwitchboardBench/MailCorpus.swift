/// The generated mails of the email benchmarks: eight shapes of real-world mail (plain with a
/// quote, alternative with an encoded-word subject, HTML-only, quoted-printable Windows-1252,
/// base64 ISO-8859-1, an attachment, nested mixed/related/alternative, an Outlook reply), varied
/// by index. Depends on nothing but `Mail`, so scripts/bench/mail-parse.sh can compile it with the
/// parser alone.
import Foundation
#if canImport(Mail)
import Mail
#endif

enum MailCorpus {
    /// Mail `index` of the corpus: one of eight shapes, from one of 50 senders; every fifth mail
    /// answers an earlier one of its sender, one in 25 is an auto-reply.
    static func mail(_ index: Int) -> [UInt8] {
        let sender = index % 50
        var headers = "From: Customer \(sender) <customer\(sender)@example.com>\r\nTo: support@shop.example\r\n"
        headers += "Message-ID: <bench-\(index)@example.com>\r\nDate: Fri, 4 Dec 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        if index % 5 == 4, index >= 50 {
            headers += "In-Reply-To: <bench-\(index - 50)@example.com>\r\nReferences: <bench-\(index - 50)@example.com>\r\n"
        }
        if index % 25 == 24 { headers += "Auto-Submitted: auto-replied\r\n" }
        let line = "Order \(index): where is it? It was due on Monday and the tracking page says nothing."
        switch index % 8 {
        case 0:
            return Array((headers + "Subject: Order \(index)\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\(line)\r\n\r\nOn Thu, Shop wrote:\r\n> Thanks for your order.\r\n").utf8)
        case 1:
            return Array((headers + "Subject: =?UTF-8?B?\(Data("Bestellung \(index) – Frage".utf8).base64EncodedString())?=\r\n"
                + "Content-Type: multipart/alternative; boundary=\"alt\(index)\"\r\n\r\n--alt\(index)\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\(line)\r\n"
                + "--alt\(index)\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<div><p>\(line)</p></div>\r\n--alt\(index)--\r\n").utf8)
        case 2:
            return Array((headers + "Subject: html \(index)\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><head><style>p{}</style></head><body><p>\(line)</p><ul><li>a</li><li>b</li></ul></body></html>\r\n").utf8)
        case 3:
            return Array((headers + "Subject: =?windows-1252?Q?Preis_=80_\(index)?=\r\nContent-Type: text/plain; charset=windows-1252\r\n"
                + "Content-Transfer-Encoding: quoted-printable\r\n\r\n=93Gr=FC=DFe=94 \(line) soft=\r\nbreak =80 100\r\n").utf8)
        case 4:
            let latin1: [UInt8] = Array("Caf".utf8) + [0xE9] + Array(" cr".utf8) + [0xE8] + Array("me \(line)".utf8)
            return Array((headers + "Subject: latin1 \(index)\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                + TransferEncoding.encodeBase64Lines(latin1) + "\r\n").utf8)
        case 5:
            let attachment = (0..<2048).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ index) }
            return Array((headers + "Subject: file \(index)\r\nContent-Type: multipart/mixed; boundary=\"mix\(index)\"\r\n\r\n--mix\(index)\r\n"
                + "Content-Type: text/plain\r\n\r\n\(line)\r\n--mix\(index)\r\nContent-Type: application/pdf; name=\"scan-\(index).pdf\"\r\n"
                + "Content-Disposition: attachment; filename=\"scan-\(index).pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                + TransferEncoding.encodeBase64Lines(attachment) + "\r\n--mix\(index)--\r\n").utf8)
        case 6:
            return Array((headers + "Subject: nested \(index)\r\nContent-Type: multipart/mixed; boundary=\"o\(index)\"\r\n\r\n--o\(index)\r\n"
                + "Content-Type: multipart/related; boundary=\"r\(index)\"\r\n\r\n--r\(index)\r\nContent-Type: multipart/alternative; boundary=\"a\(index)\"\r\n\r\n"
                + "--a\(index)\r\nContent-Type: text/plain\r\n\r\n\(line)\r\n--a\(index)\r\nContent-Type: text/html\r\n\r\n<p>\(line)</p>\r\n--a\(index)--\r\n"
                + "--r\(index)\r\nContent-Type: image/png\r\nContent-ID: <logo\(index)@x>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--r\(index)--\r\n--o\(index)--\r\n").utf8)
        default:
            return Array((headers + "Subject: Re: Order \(index)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
                + TransferEncoding.encodeQuotedPrintable("\(line)\n\n________________________________\nFrom: Shop <support@shop.example>\nSent: Monday\n\nold text") + "\r\n").utf8)
        }
    }
}
