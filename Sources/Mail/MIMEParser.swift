/// Raw RFC 5322 / MIME messages to `ParsedMail`: the part tree (multipart/mixed, alternative,
/// related, report, nested to `maxDepth`), transfer encodings, charsets, which part is the text
/// (plain preferred; the HTML's text when there is no plain part) and which parts are files.
/// Parsing never throws: a malformed message is read as far as it goes, and the rest is text,
/// with `warnings` saying what was wrong.
import Foundation
import SwitchboardCore

public enum MIMEParser {
    /// Multiparts nested deeper than this are kept as files, not opened.
    public static let maxDepth = 16
    /// Parts beyond this many in one message are dropped (with a warning).
    public static let maxParts = 1_000

    public static func parse(_ bytes: [UInt8]) -> ParsedMail {
        parse(bytes[...])
    }

    public static func parse(_ bytes: ArraySlice<UInt8>) -> ParsedMail {
        var warnings: [String] = []
        var (headerBlock, body) = MailHeaders.split(bytes)
        if body.isEmpty, !looksLikeHeaders(headerBlock) {
            warnings.append("the message has no header section; it was read as text")
            body = headerBlock
            headerBlock = headerBlock[headerBlock.startIndex..<headerBlock.startIndex]
        }
        let headers = MailHeaders.parse(headerBlock, warnings: &warnings)
        var state = Collected()
        collect(Part(headers: headers, body: body), depth: 0, into: &state, warnings: &warnings)

        var mail = ParsedMail(headers: headers)
        mail.subject = headers.text("Subject")?.trimmingCharacters(in: .whitespaces) ?? ""
        mail.from = headers["From"].flatMap { MailAddresses.parse($0).first }
        mail.to = headers.values("To").flatMap(MailAddresses.parse)
        mail.cc = headers.values("Cc").flatMap(MailAddresses.parse)
        mail.replyTo = headers.values("Reply-To").flatMap(MailAddresses.parse)
        mail.messageID = MailAddresses.messageIDs(headers["Message-ID"]).first
        mail.inReplyTo = MailAddresses.messageIDs(headers["In-Reply-To"])
        mail.references = MailAddresses.messageIDs(headers.values("References").joined(separator: " "))
        let html = state.htmls.isEmpty ? nil : state.htmls.joined(separator: "\n")
        let plain = state.texts.joined(separator: "\n\n").replacingOccurrences(of: "\r\n", with: "\n")
        mail.text = plain.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? (html.map(HTMLText.plainText) ?? "") : plain
        mail.text = mail.text.trimmingCharacters(in: .whitespacesAndNewlines)
        mail.html = html
        mail.attachments = state.attachments
        mail.warnings = warnings
        return mail
    }

    struct Part {
        var headers: MailHeaders
        var body: ArraySlice<UInt8>

        var contentType: HeaderValueWithParameters {
            let parsed = headers["Content-Type"].map(HeaderValueWithParameters.parse)
            guard let parsed, parsed.value.contains("/") else { return HeaderValueWithParameters(value: "text/plain", parameters: parsed?.parameters ?? [:]) }
            return parsed
        }
        var disposition: HeaderValueWithParameters? { headers["Content-Disposition"].map(HeaderValueWithParameters.parse) }
        var filename: String? {
            let name = disposition?["filename"] ?? contentType["name"]
            return name?.isEmpty == false ? name : nil
        }
    }

    struct Collected {
        var texts: [String] = []
        var htmls: [String] = []
        var attachments: [MailAttachment] = []
        var parts = 0
    }

    static func looksLikeHeaders(_ block: ArraySlice<UInt8>) -> Bool {
        guard let firstLineEnd = block.firstIndex(of: 0x0A) ?? (block.isEmpty ? nil : block.endIndex) else { return false }
        let line = block[block.startIndex..<firstLineEnd]
        guard let colon = line.firstIndex(of: 0x3A), colon > line.startIndex else { return false }
        return line[line.startIndex..<colon].allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    static func collect(_ part: Part, depth: Int, into state: inout Collected, warnings: inout [String]) {
        state.parts += 1
        if state.parts > maxParts {
            if state.parts == maxParts + 1 { warnings.append("more than \(maxParts) parts; the rest were dropped") }
            return
        }
        let type = part.contentType
        if type.value.hasPrefix("multipart/") {
            guard depth < maxDepth else {
                warnings.append("multipart nested deeper than \(maxDepth) levels was kept as a file")
                state.attachments.append(MailAttachment(filename: "part.bin", contentType: type.value, data: Array(part.body)))
                return
            }
            guard let boundary = type["boundary"], !boundary.isEmpty else {
                warnings.append("a \(type.value) part has no boundary; it was read as text")
                state.texts.append(Charsets.decode(part.body, charset: nil).text)
                return
            }
            let (children, closed) = splitMultipart(part.body, boundary: boundary)
            if children.isEmpty {
                warnings.append("the boundary of a \(type.value) part never appears; it was read as text")
                state.texts.append(Charsets.decode(part.body, charset: nil).text)
                return
            }
            if !closed { warnings.append("a \(type.value) part is not closed (the message may be cut short)") }
            let parts = children.map { child -> Part in
                var childWarnings: [String] = []
                let (headerBlock, body) = MailHeaders.split(child)
                let headers = MailHeaders.parse(headerBlock, warnings: &childWarnings)
                warnings += childWarnings
                var part = Part(headers: headers, body: body)
                if type.value == "multipart/digest", headers["Content-Type"] == nil {
                    part.headers.fields.append(MailHeader(name: "Content-Type", value: "message/rfc822"))
                }
                return part
            }
            if type.value == "multipart/alternative" {
                collectAlternative(parts, depth: depth, into: &state, warnings: &warnings)
            } else {
                for child in parts { collect(child, depth: depth + 1, into: &state, warnings: &warnings) }
            }
            return
        }
        let isText = type.value == "text/plain" || type.value == "text/html"
        let dispositionIsAttachment = part.disposition?.value == "attachment"
        if !isText || dispositionIsAttachment || part.filename != nil {
            let data = decodeBody(part, warnings: &warnings)
            state.attachments.append(MailAttachment(
                filename: part.filename ?? defaultName(for: type.value, index: state.attachments.count + 1), contentType: type.value,
                contentID: MailAddresses.messageIDs(part.headers["Content-ID"]).first, data: data))
            return
        }
        let text = decodeText(part, warnings: &warnings)
        if type.value == "text/html" { state.htmls.append(text) } else { state.texts.append(text) }
    }

    /// multipart/alternative: one rendering of the same content. The last plain and the last HTML
    /// rendering are kept (the richest comes last); files inside a rendering (multipart/related
    /// images) are kept too.
    static func collectAlternative(_ parts: [Part], depth: Int, into state: inout Collected, warnings: inout [String]) {
        var plain: String?
        var html: String?
        for child in parts {
            var inner = Collected()
            inner.parts = state.parts
            collect(child, depth: depth + 1, into: &inner, warnings: &warnings)
            state.parts = inner.parts
            if !inner.texts.isEmpty { plain = inner.texts.joined(separator: "\n\n") }
            if !inner.htmls.isEmpty { html = inner.htmls.joined(separator: "\n") }
            state.attachments += inner.attachments
        }
        if let plain { state.texts.append(plain) }
        if let html { state.htmls.append(html) }
    }

    static func defaultName(for type: String, index: Int) -> String {
        let extensions = [
            "message/rfc822": "eml", "application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif",
            "text/calendar": "ics", "message/delivery-status": "txt", "text/rfc822-headers": "txt",
        ]
        return "attachment-\(index).\(extensions[type] ?? "bin")"
    }

    static func decodeBody(_ part: Part, warnings: inout [String]) -> [UInt8] {
        let encoding = (part.headers["Content-Transfer-Encoding"] ?? "7bit").trimmingCharacters(in: .whitespaces).lowercased()
        switch encoding {
        case "base64":
            let (bytes, clean) = TransferEncoding.decodeBase64(part.body)
            if !clean { warnings.append("a base64 part had characters outside the alphabet or was cut short") }
            return bytes
        case "quoted-printable":
            return TransferEncoding.decodeQuotedPrintable(part.body)
        case "7bit", "8bit", "binary", "":
            return Array(part.body)
        default:
            warnings.append("unknown transfer encoding '\(encoding)'; the part was kept as is")
            return Array(part.body)
        }
    }

    static func decodeText(_ part: Part, warnings: inout [String]) -> String {
        let bytes = decodeBody(part, warnings: &warnings)
        let charset = part.contentType["charset"]
        let (text, known) = Charsets.decode(bytes, charset: charset)
        if !known { warnings.append("unknown charset '\(charset ?? "")'; the text was read as UTF-8 or Windows-1252") }
        return text
    }

    /// The parts between `--boundary` lines, and whether the closing `--boundary--` was seen.
    static func splitMultipart(_ body: ArraySlice<UInt8>, boundary: String) -> ([ArraySlice<UInt8>], Bool) {
        let delimiter = Array("--\(boundary)".utf8)
        var parts: [ArraySlice<UInt8>] = []
        var partStart: Int?
        var index = body.startIndex
        var lineStart = true
        while index < body.endIndex {
            if lineStart, body[index] == 0x2D, matches(body, at: index, delimiter) {
                let afterDelimiter = index + delimiter.count
                let isClose = afterDelimiter + 1 < body.endIndex && body[afterDelimiter] == 0x2D && body[afterDelimiter + 1] == 0x2D
                // The line must end after the delimiter (trailing blanks allowed), else it is content.
                var lineEnd = isClose ? afterDelimiter + 2 : afterDelimiter
                while lineEnd < body.endIndex, body[lineEnd] == 0x20 || body[lineEnd] == 0x09 { lineEnd += 1 }
                let endsLine = lineEnd == body.endIndex || body[lineEnd] == 0x0A || body[lineEnd] == 0x0D
                if endsLine {
                    if let start = partStart { parts.append(body[start..<contentEnd(body, before: index, from: start)]) }
                    if isClose { return (parts, true) }
                    var next = lineEnd
                    if next < body.endIndex, body[next] == 0x0D { next += 1 }
                    if next < body.endIndex, body[next] == 0x0A { next += 1 }
                    partStart = next
                    index = next
                    lineStart = true
                    continue
                }
            }
            lineStart = body[index] == 0x0A
            if !lineStart, let newline = body[index...].firstIndex(of: 0x0A) {
                index = newline + 1
                lineStart = true
                continue
            }
            index += 1
        }
        if let start = partStart, start <= body.endIndex { parts.append(body[start..<body.endIndex]) }
        return (parts, false)
    }

    /// The line break before a delimiter belongs to the delimiter.
    static func contentEnd(_ body: ArraySlice<UInt8>, before index: Int, from start: Int) -> Int {
        var end = index
        if end > start, body[end - 1] == 0x0A { end -= 1 }
        if end > start, body[end - 1] == 0x0D { end -= 1 }
        return end
    }

    static func matches(_ body: ArraySlice<UInt8>, at index: Int, _ pattern: [UInt8]) -> Bool {
        guard index + pattern.count <= body.endIndex else { return false }
        for offset in 0..<pattern.count where body[index + offset] != pattern[offset] { return false }
        return true
    }
}
