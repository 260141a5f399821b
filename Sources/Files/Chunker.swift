import Foundation

/// A piece of a document to embed, with where it is (for citations).
public struct TextChunk: Sendable, Hashable {
    public var ordinal: Int
    public var text: String
    /// "page 3", a section's heading, both ("page 3 · Results"), or "" when the document has neither.
    public var position: String
}

/// Cuts extracted text into chunks along its structure: pages (pdftotext separates them with a
/// form feed), headings (Markdown `#` lines; short lines without closing punctuation standing
/// alone) and paragraphs (blank lines). Paragraphs are gathered up to `targetCharacters`; a
/// longer one is cut at sentence, then word boundaries. Within a section, each chunk starts with
/// the last `overlap` characters of the one before.
public struct Chunker: Sendable {
    public var targetCharacters: Int
    public var overlap: Int

    public init(targetCharacters: Int = 800, overlap: Int = 100) {
        self.targetCharacters = max(100, targetCharacters)
        self.overlap = max(0, min(overlap, targetCharacters / 2))
    }

    private struct Block {
        var text: String
        var page: Int?
        var heading: String?
        var isHeading: Bool
    }

    /// `linesAreParagraphs`: every line is a paragraph of its own (a DOCX's text).
    public func chunks(_ text: String, linesAreParagraphs: Bool = false) -> [TextChunk] {
        let blocks = self.blocks(linesAreParagraphs ? text.replacingOccurrences(of: "\n", with: "\n\n") : text)
        var chunks: [TextChunk] = []
        var current = ""
        var currentPosition = ""
        var previousTail = ""

        func flush() {
            let body = current.trimmingCharacters(in: .whitespacesAndNewlines)
            if !body.isEmpty {
                chunks.append(TextChunk(ordinal: chunks.count, text: body, position: currentPosition))
                previousTail = tail(of: body)
            }
            current = ""
        }

        for block in blocks {
            let position = Self.position(page: block.page, heading: block.heading)
            if position != currentPosition {
                flush()
                previousTail = ""
                currentPosition = position
            }
            if block.isHeading {
                // A heading opens its section's first chunk.
                flush()
                previousTail = ""
                current = block.text
                continue
            }
            for piece in split(block.text) {
                if !current.isEmpty, current.count + 2 + piece.count > targetCharacters {
                    flush()
                    if !previousTail.isEmpty { current = previousTail }
                }
                current += current.isEmpty ? piece : "\n\n" + piece
            }
        }
        flush()
        return chunks
    }

    static func position(page: Int?, heading: String?) -> String {
        let pagePart = page.map { "page \($0)" }
        let headingPart = heading.map { String($0.prefix(150)) }
        return [pagePart, headingPart].compactMap { $0 }.joined(separator: " · ")
    }

    private func blocks(_ text: String) -> [Block] {
        let normalized = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        let pages = normalized.split(separator: "\u{0C}", omittingEmptySubsequences: false)
        let paged = pages.count > 1
        var blocks: [Block] = []
        var heading: String?
        for (pageIndex, page) in pages.enumerated() {
            var paragraph: [String] = []
            func endParagraph() {
                let joined = paragraph.joined(separator: " ").trimmingCharacters(in: .whitespaces)
                if !joined.isEmpty { blocks.append(Block(text: joined, page: paged ? pageIndex + 1 : nil, heading: heading, isHeading: false)) }
                paragraph = []
            }
            let lines = page.split(separator: "\n", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            for (index, line) in lines.enumerated() {
                if line.isEmpty {
                    endParagraph()
                    continue
                }
                let alone = paragraph.isEmpty && (index + 1 == lines.count || lines[index + 1].isEmpty)
                if let title = Self.heading(line, standsAlone: alone) {
                    endParagraph()
                    heading = title
                    blocks.append(Block(text: line, page: paged ? pageIndex + 1 : nil, heading: heading, isHeading: true))
                    continue
                }
                paragraph.append(line)
            }
            endParagraph()
        }
        return blocks
    }

    /// The heading's title when `line` is one.
    static func heading(_ line: String, standsAlone: Bool) -> String? {
        if line.hasPrefix("#") {
            let title = line.drop(while: { $0 == "#" }).trimmingCharacters(in: .whitespaces)
            return title.isEmpty ? nil : title
        }
        guard standsAlone, line.count <= 80, line.count >= 2, let last = line.last, !".,;:!?)\"'”".contains(last),
              line.first?.isLetter == true || line.first?.isNumber == true, line.split(separator: " ").count <= 10
        else { return nil }
        return line
    }

    /// A paragraph in pieces of at most `targetCharacters` (sentences, then words).
    private func split(_ paragraph: String) -> [String] {
        guard paragraph.count > targetCharacters else { return [paragraph] }
        var pieces: [String] = []
        var current = ""
        var sentences = Self.sentences(paragraph)
        if sentences.isEmpty { sentences = [paragraph] }
        for sentence in sentences {
            for part in sentence.count > targetCharacters ? cutWords(sentence) : [sentence] {
                if !current.isEmpty, current.count + part.count > targetCharacters {
                    pieces.append(current.trimmingCharacters(in: .whitespaces))
                    current = ""
                }
                current += part
            }
        }
        if !current.trimmingCharacters(in: .whitespaces).isEmpty { pieces.append(current.trimmingCharacters(in: .whitespaces)) }
        return pieces
    }

    /// Sentences with their closing punctuation and the space after it (".", "!", "?" before a blank).
    static func sentences(_ text: String) -> [String] {
        var sentences: [String] = []
        var current = ""
        var previousEnds = false
        for character in text {
            if previousEnds, character == " " {
                current.append(character)
                sentences.append(current)
                current = ""
                previousEnds = false
                continue
            }
            current.append(character)
            previousEnds = character == "." || character == "!" || character == "?"
        }
        if !current.isEmpty { sentences.append(current) }
        return sentences
    }

    private func cutWords(_ text: String) -> [String] {
        var parts: [String] = []
        var current = ""
        for word in text.split(separator: " ", omittingEmptySubsequences: true) {
            if word.count > targetCharacters {
                if !current.isEmpty { parts.append(current + " "); current = "" }
                var rest = Substring(word)
                while !rest.isEmpty {
                    parts.append(String(rest.prefix(targetCharacters)))
                    rest = rest.dropFirst(targetCharacters)
                }
                continue
            }
            if current.count + word.count + 1 > targetCharacters {
                parts.append(current + " ")
                current = ""
            }
            current += current.isEmpty ? String(word) : " " + word
        }
        if !current.isEmpty { parts.append(current + " ") }
        return parts
    }

    /// The last `overlap` characters of a chunk, from a word boundary.
    private func tail(of text: String) -> String {
        guard overlap > 0, text.count > overlap else { return overlap > 0 ? "" : "" }
        let cut = text.suffix(overlap)
        guard let space = cut.firstIndex(of: " ") else { return String(cut) }
        return String(cut[cut.index(after: space)...])
    }
}
