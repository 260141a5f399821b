import Foundation

/// HTML to readable text: scripts, styles and comments dropped, block elements become line
/// breaks, entities decoded, runs of blanks collapsed.
public enum HTMLText {
    static let blockTags: Set<String> = [
        "p", "div", "br", "li", "ul", "ol", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article",
        "header", "footer", "blockquote", "pre", "hr", "title", "dd", "dt", "nav", "aside", "main", "form",
    ]
    static let droppedContent: Set<String> = ["script", "style", "noscript", "template", "svg", "head"]

    public static func plainText(_ html: String) -> String {
        var output = ""
        var index = html.startIndex
        while index < html.endIndex {
            let character = html[index]
            guard character == "<" else {
                output.append(character)
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
                // Keep the title out of the text but skip the rest of the element.
                if let end = html[index...].range(of: "</\(name)", options: .caseInsensitive) {
                    index = html[end.upperBound...].firstIndex(of: ">").map { html.index(after: $0) } ?? html.endIndex
                } else {
                    index = html.endIndex
                }
                continue
            }
            if blockTags.contains(name) { output.append("\n") } else if name == "td" || name == "th" { output.append(" ") }
        }
        return normalizeWhitespace(decodeEntities(output))
    }

    static let namedEntities: [String: String] = [
        "amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": " ", "ndash": "–", "mdash": "—",
        "hellip": "…", "copy": "©", "reg": "®", "euro": "€", "laquo": "«", "raquo": "»", "lsquo": "‘", "rsquo": "’",
        "ldquo": "“", "rdquo": "”", "auml": "ä", "ouml": "ö", "uuml": "ü", "Auml": "Ä", "Ouml": "Ö", "Uuml": "Ü", "szlig": "ß",
        "eacute": "é", "egrave": "è", "agrave": "à", "ccedil": "ç",
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
                    replacement = UInt32(entity.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init).map { String(Character($0)) }
                } else if entity.hasPrefix("#") {
                    replacement = UInt32(entity.dropFirst()).flatMap(Unicode.Scalar.init).map { String(Character($0)) }
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

    /// Blanks collapsed within lines, at most one empty line between paragraphs.
    static func normalizeWhitespace(_ text: String) -> String {
        var lines: [String] = []
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = rawLine.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\u{A0}" }).joined(separator: " ")
            if line.isEmpty, lines.last?.isEmpty ?? true { continue }
            lines.append(line)
        }
        return lines.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// The text of a Word document's `word/document.xml`: `<w:t>` runs, paragraphs as lines, tabs and breaks kept.
public enum DOCXText {
    public static func plainText(fromDocumentXML xml: String) -> String {
        var output = ""
        var index = xml.startIndex
        var inText = false
        while index < xml.endIndex {
            let character = xml[index]
            if character == "<", let close = xml[index...].firstIndex(of: ">") {
                let tag = xml[xml.index(after: index)..<close]
                let isEnd = tag.hasPrefix("/")
                let name = (isEnd ? "/" : "") + tag.drop(while: { $0 == "/" }).prefix(while: { !$0.isWhitespace && $0 != "/" })
                switch name {
                case "w:t": inText = !tag.hasSuffix("/")
                case "/w:t": inText = false
                case "/w:p": output.append("\n")
                case "w:tab": output.append("\t")
                case "w:br", "w:cr": output.append("\n")
                default: break
                }
                index = xml.index(after: close)
                continue
            }
            if inText { output.append(character) }
            index = xml.index(after: index)
        }
        return HTMLText.decodeEntities(output).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
