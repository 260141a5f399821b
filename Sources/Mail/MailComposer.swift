/// The mail Switchboard writes: a reply's subject (`Re:` once), its threading headers (a fresh
/// Message-ID, In-Reply-To, References), `Auto-Submitted: auto-replied`, and a
/// multipart/alternative body (quoted-printable text and minimal HTML, the original quoted
/// below), rendered as RFC 5322 bytes with CRLF line ends and folded headers.
import Foundation
import SwitchboardCore

public struct OutgoingMail: Sendable, Hashable {
    public var from: MailAddress
    public var to: [MailAddress]
    public var replyTo: MailAddress?
    public var subject: String
    /// Without angle brackets.
    public var messageID: String
    public var inReplyTo: String?
    public var references: [String]
    public var date: Date
    public var text: String
    public var html: String?
    /// `auto-replied` for answers a machine wrote (RFC 3834), nil for a person's.
    public var autoSubmitted: String?

    public init(
        from: MailAddress, to: [MailAddress], replyTo: MailAddress? = nil, subject: String, messageID: String,
        inReplyTo: String? = nil, references: [String] = [], date: Date = Date(), text: String, html: String? = nil,
        autoSubmitted: String? = "auto-replied"
    ) {
        self.from = from
        self.to = to
        self.replyTo = replyTo
        self.subject = subject
        self.messageID = messageID
        self.inReplyTo = inReplyTo
        self.references = references
        self.date = date
        self.text = text
        self.html = html
        self.autoSubmitted = autoSubmitted
    }

    /// The message as sent: headers, then the body, CRLF line ends.
    public func render(boundary: String = "sb-" + UUID().uuidString.lowercased()) -> [UInt8] {
        var lines: [String] = []
        func header(_ name: String, _ value: String) { lines.append(MailComposer.fold("\(name): \(value)")) }
        header("From", MailComposer.addressField(from))
        header("To", to.map(MailComposer.addressField).joined(separator: ", "))
        if let replyTo { header("Reply-To", MailComposer.addressField(replyTo)) }
        header("Subject", EncodedWords.encode(subject))
        header("Date", MailComposer.rfc5322Date(date))
        header("Message-ID", "<\(messageID)>")
        if let inReplyTo { header("In-Reply-To", "<\(inReplyTo)>") }
        if !references.isEmpty { header("References", references.map { "<\($0)>" }.joined(separator: " ")) }
        if let autoSubmitted { header("Auto-Submitted", autoSubmitted) }
        header("MIME-Version", "1.0")
        if let html {
            header("Content-Type", "multipart/alternative; boundary=\"\(boundary)\"")
            lines.append("")
            lines.append("--\(boundary)")
            lines.append("Content-Type: text/plain; charset=utf-8")
            lines.append("Content-Transfer-Encoding: quoted-printable")
            lines.append("")
            lines.append(TransferEncoding.encodeQuotedPrintable(text))
            lines.append("--\(boundary)")
            lines.append("Content-Type: text/html; charset=utf-8")
            lines.append("Content-Transfer-Encoding: quoted-printable")
            lines.append("")
            lines.append(TransferEncoding.encodeQuotedPrintable(html))
            lines.append("--\(boundary)--")
        } else {
            header("Content-Type", "text/plain; charset=utf-8")
            header("Content-Transfer-Encoding", "quoted-printable")
            lines.append("")
            lines.append(TransferEncoding.encodeQuotedPrintable(text))
        }
        return Array((lines.joined(separator: "\r\n") + "\r\n").utf8)
    }
}

public enum MailComposer {
    /// `Re: {subject}` with the subject's own reply prefixes (`Re:`, `RE:`, `Re[2]:`, `AW:`, `SV:`)
    /// removed first, so a thread never reads `Re: Re:`.
    public static func replySubject(_ subject: String) -> String {
        var rest = Substring(subject.trimmingCharacters(in: .whitespaces))
        while true {
            let lower = rest.lowercased()
            var removed = false
            for prefix in ["re:", "aw:", "sv:", "antw:", "réf:", "ref:"] where lower.hasPrefix(prefix) {
                rest = rest.dropFirst(prefix.count)
                removed = true
                break
            }
            if !removed, lower.hasPrefix("re["), let close = rest.firstIndex(of: "]"), rest[rest.index(after: close)...].hasPrefix(":") {
                rest = rest[rest.index(close, offsetBy: 2)...]
                removed = true
            }
            if !removed { break }
            rest = Substring(rest.trimmingCharacters(in: .whitespaces))
        }
        return rest.isEmpty ? "Re: (no subject)" : "Re: \(rest)"
    }

    /// A reply's References: the parent's, then the parent itself, without repeats, the oldest
    /// dropped (but the first kept, RFC 5322 §3.6.4) beyond `limit`.
    public static func references(parent: [String], parentID: String?, limit: Int = 20) -> [String] {
        var seen = Set<String>()
        var chain = (parent + [parentID].compactMap { $0 }).filter { seen.insert($0).inserted }
        if chain.count > limit { chain = [chain[0]] + chain.suffix(limit - 1) }
        return chain
    }

    /// A fresh Message-ID under `domain` (without angle brackets).
    public static func newMessageID(domain: String) -> String {
        "\(UUID().uuidString.lowercased())@\(domain)"
    }

    /// The reply body: the answer, then the original quoted under an attribution line; text and
    /// minimal HTML.
    public static func replyBody(answer: String, original: String, originalFrom: MailAddress?, originalDate: String?) -> (text: String, html: String) {
        let who = originalFrom?.description ?? "you"
        let attribution = originalDate.map { "On \($0), \(who) wrote:" } ?? "\(who) wrote:"
        let quoted = original.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.isEmpty ? ">" : "> \($0)" }.joined(separator: "\n")
        let text = "\(answer)\n\n\(attribution)\n\(quoted)\n"
        let answerHTML = answer.split(separator: "\n", omittingEmptySubsequences: false).map { HTMLText.escape(String($0)) }.joined(separator: "<br>\n")
        let originalHTML = original.split(separator: "\n", omittingEmptySubsequences: false).map { HTMLText.escape(String($0)) }.joined(separator: "<br>\n")
        let html = """
            <!DOCTYPE html><html><body><div>\(answerHTML)</div>
            <p>\(HTMLText.escape(attribution))</p>
            <blockquote style="margin:0 0 0 .8ex;border-left:1px solid #ccc;padding-left:1ex">\(originalHTML)</blockquote>
            </body></html>
            """
        return (text, html)
    }

    static func addressField(_ address: MailAddress) -> String {
        guard let name = address.name, !name.isEmpty else { return address.address }
        let encoded = EncodedWords.encode(name)
        if encoded != name { return "\(encoded) <\(address.address)>" }
        let needsQuotes = name.contains { "()<>[]:;@\\,.\"".contains($0) }
        let escaped = name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        return needsQuotes ? "\"\(escaped)\" <\(address.address)>" : "\(name) <\(address.address)>"
    }

    /// Folds a header line at blanks so no line exceeds 78 characters where it can be helped.
    static func fold(_ line: String) -> String {
        guard line.count > 78 else { return line }
        var output: [String] = []
        var current = ""
        for word in line.split(separator: " ", omittingEmptySubsequences: false) {
            if !current.isEmpty, current.count + 1 + word.count > 78 {
                output.append(current)
                current = " " + word
            } else {
                current += current.isEmpty ? String(word) : " " + word
            }
        }
        output.append(current)
        return output.joined(separator: "\r\n")
    }

    static func rfc5322Date(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        return formatter.string(from: date)
    }
}
