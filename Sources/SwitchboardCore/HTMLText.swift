/// HTML to readable text, for HTML-only mail and HTML documents alike: scripts, styles and
/// comments dropped, block elements and `<br>` become line breaks, list items bullets, entities
/// decoded, blank runs collapsed; and the reverse, text as minimal escaped HTML for the mail
/// Switchboard writes.
import Foundation

public enum HTMLText {
    static let blockTags: Set<String> = [
        "p", "div", "br", "li", "ul", "ol", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article",
        "header", "footer", "blockquote", "pre", "hr", "dd", "dt", "tbody", "thead", "nav", "aside", "main", "form",
    ]
    static let droppedContent: Set<String> = ["script", "style", "head", "title", "noscript", "template", "svg"]

    public static func plainText(_ html: String) -> String {
        var output = ""
        var index = html.startIndex
        while index < html.endIndex {
            let character = html[index]
            guard character == "<" else {
                output.append(character == "\n" || character == "\r\n" || character == "\t" ? " " : character)
                index = html.index(after: index)
                continue
            }
            if html[index...].hasPrefix("<!--") {
                index = html[index...].range(of: "-->")?.upperBound ?? html.endIndex
                continue
            }
            guard let close = html[index...].firstIndex(of: ">") else { break }
            let tag = html[html.index(after: index)..<close]
            let isEnd = tag.hasPrefix("/")
            let name = tag.drop(while: { $0 == "/" }).prefix(while: { $0.isLetter || $0.isNumber }).lowercased()
            index = html.index(after: close)
            if !isEnd, droppedContent.contains(name), !tag.hasSuffix("/") {
                if let end = html[index...].range(of: "</\(name)", options: .caseInsensitive) {
                    index = html[end.upperBound...].firstIndex(of: ">").map { html.index(after: $0) } ?? html.endIndex
                } else {
                    index = html.endIndex
                }
                continue
            }
            if name == "li" {
                if !isEnd { output.append("\n- ") }
            } else if blockTags.contains(name) {
                output.append("\n")
            } else if name == "td" || name == "th" {
                output.append(" ")
            }
        }
        return normalizeWhitespace(decodeEntities(output))
    }

    static let namedEntities: [String: String] = [
        "amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": " ", "ndash": "–", "mdash": "—",
        "hellip": "…", "copy": "©", "reg": "®", "euro": "€", "laquo": "«", "raquo": "»", "lsquo": "‘", "rsquo": "’",
        "ldquo": "“", "rdquo": "”", "auml": "ä", "ouml": "ö", "uuml": "ü", "Auml": "Ä", "Ouml": "Ö", "Uuml": "Ü", "szlig": "ß",
        "eacute": "é", "egrave": "è", "agrave": "à", "ccedil": "ç", "bull": "•", "middot": "·", "trade": "™",
    ]

    public static func decodeEntities(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var output = ""
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            if character == "&", let semicolon = text[index...].prefix(12).firstIndex(of: ";") {
                let entity = String(text[text.index(after: index)..<semicolon])
                var replacement: String?
                if entity.hasPrefix("#x") || entity.hasPrefix("#X") {
                    replacement = UInt32(entity.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init).map { String($0) }
                } else if entity.hasPrefix("#") {
                    replacement = UInt32(entity.dropFirst()).flatMap(Unicode.Scalar.init).map { String($0) }
                } else {
                    replacement = namedEntities[entity]
                }
                if let replacement {
                    output += replacement
                    index = text.index(after: semicolon)
                    continue
                }
            }
            output.append(character)
            index = text.index(after: index)
        }
        return output
    }

    /// Blanks within lines collapsed, lines trimmed, at most one empty line in a row.
    static func normalizeWhitespace(_ text: String) -> String {
        var lines: [String] = []
        var blank = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let collapsed = line.split(whereSeparator: { $0 == " " || $0 == "\u{00A0}" }).joined(separator: " ")
            if collapsed.isEmpty {
                blank += 1
                if blank == 1, !lines.isEmpty { lines.append("") }
            } else {
                blank = 0
                lines.append(collapsed)
            }
        }
        while lines.last == "" { lines.removeLast() }
        return lines.joined(separator: "\n")
    }

    /// `text` escaped for HTML.
    public static func escape(_ text: String) -> String {
        var output = ""
        output.reserveCapacity(text.count)
        for character in text {
            switch character {
            case "&": output += "&amp;"
            case "<": output += "&lt;"
            case ">": output += "&gt;"
            case "\"": output += "&quot;"
            default: output.append(character)
            }
        }
        return output
    }
}
