/// RFC 5322 header blocks: where the headers end, unfolding of continuation lines, lookups by
/// case-insensitive name. Raw 8-bit header bytes are read as UTF-8, else as Latin-1.
import Foundation

public struct MailHeader: Sendable, Hashable {
    public var name: String
    /// Unfolded, still encoded (RFC 2047 words are decoded by the accessors that want text).
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

public struct MailHeaders: Sendable, Hashable, Sequence {
    public var fields: [MailHeader]

    public init(_ fields: [MailHeader] = []) { self.fields = fields }

    /// The first field named `name` (case-insensitive).
    public subscript(_ name: String) -> String? {
        fields.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    public func values(_ name: String) -> [String] {
        fields.filter { $0.name.caseInsensitiveCompare(name) == .orderedSame }.map(\.value)
    }

    public func contains(_ name: String) -> Bool { self[name] != nil }

    /// The field's text with encoded words decoded.
    public func text(_ name: String) -> String? { self[name].map(EncodedWords.decode) }

    public func makeIterator() -> IndexingIterator<[MailHeader]> { fields.makeIterator() }

    /// Splits `bytes` into the header block and the body. The headers end at the first empty line
    /// (CRLF CRLF or LF LF); a message without one is all headers if every line looks like a
    /// field, else all body.
    static func split(_ bytes: ArraySlice<UInt8>) -> (headers: ArraySlice<UInt8>, body: ArraySlice<UInt8>) {
        var index = bytes.startIndex
        // A message that starts with an empty line has no headers.
        if bytes.first == 0x0A { return (bytes[index..<index], bytes[(index + 1)...]) }
        if bytes.count >= 2, bytes[index] == 0x0D, bytes[index + 1] == 0x0A { return (bytes[index..<index], bytes[(index + 2)...]) }
        while index < bytes.endIndex {
            guard let newline = bytes[index...].firstIndex(of: 0x0A) else { break }
            let next = newline + 1
            if next < bytes.endIndex, bytes[next] == 0x0A { return (bytes[bytes.startIndex..<next], bytes[(next + 1)...]) }
            if next + 1 < bytes.endIndex, bytes[next] == 0x0D, bytes[next + 1] == 0x0A {
                return (bytes[bytes.startIndex..<next], bytes[(next + 2)...])
            }
            index = next
        }
        return (bytes, bytes[bytes.endIndex...])
    }

    /// Parses a header block. Lines that are neither fields nor continuations are skipped and
    /// reported in `warnings`.
    static func parse(_ block: ArraySlice<UInt8>, warnings: inout [String]) -> MailHeaders {
        let text = Charsets.decodeHeaderBytes(block)
        var fields: [MailHeader] = []
        var skipped = 0
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            var line = Substring(rawLine)
            if line.hasSuffix("\r") { line = line.dropLast() }
            if line.isEmpty { continue }
            if let first = line.first, first == " " || first == "\t" {
                // Unfolding (RFC 5322 §2.2.3): the CRLF goes, the whitespace stays.
                if !fields.isEmpty { fields[fields.count - 1].value += String(line) } else { skipped += 1 }
                continue
            }
            guard let colon = line.firstIndex(of: ":") else { skipped += 1; continue }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty, name.allSatisfy({ $0.isASCII && $0 != " " }) else { skipped += 1; continue }
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            fields.append(MailHeader(name: name, value: value))
        }
        if skipped > 0 { warnings.append("\(skipped) header line(s) could not be read") }
        return MailHeaders(fields.map { MailHeader(name: $0.name, value: $0.value.trimmingCharacters(in: .whitespaces)) })
    }
}
