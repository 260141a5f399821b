/// Structured header values with parameters: `Content-Type` and `Content-Disposition` (RFC 2045
/// §5.1, RFC 2183), including quoted strings, comments, and RFC 2231 extended and continued
/// parameters (`filename*=UTF-8''na%C3%AFve.pdf`, `name*0=...; name*1=...`).
import Foundation

public struct HeaderValueWithParameters: Sendable, Hashable {
    /// Lowercased: `text/plain`, `attachment`.
    public var value: String
    /// Names lowercased; values decoded (RFC 2231 and RFC 2047).
    public var parameters: [String: String]

    public init(value: String, parameters: [String: String] = [:]) {
        self.value = value
        self.parameters = parameters
    }

    public subscript(_ name: String) -> String? { parameters[name.lowercased()] }

    /// Parses `text/plain; charset="utf-8"; format=flowed`.
    public static func parse(_ text: String) -> HeaderValueWithParameters {
        let parts = splitOutsideQuotes(stripComments(text), separator: ";")
        let value = (parts.first ?? "").trimmingCharacters(in: .whitespaces).lowercased()
        var plain: [String: String] = [:]
        var extended: [String: [(Int, String, Bool)]] = [:]  // name -> (section, value, encoded)
        for part in parts.dropFirst() {
            guard let equals = part.firstIndex(of: "=") else { continue }
            var name = part[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            var raw = part[part.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if raw.hasPrefix("\""), raw.hasSuffix("\""), raw.count >= 2 {
                raw = unescape(String(raw.dropFirst().dropLast()))
            }
            guard !name.isEmpty else { continue }
            let encoded = name.hasSuffix("*")
            if encoded { name.removeLast() }
            if let star = name.firstIndex(of: "*"), let section = Int(name[name.index(after: star)...]) {
                extended[String(name[..<star]), default: []].append((section, raw, encoded))
            } else if encoded {
                extended[name, default: []].append((0, raw, true))
            } else if plain[name] == nil {
                plain[name] = raw
            }
        }
        var parameters = plain.mapValues(EncodedWords.decode)
        for (name, sections) in extended {
            let ordered = sections.sorted { $0.0 < $1.0 }
            var charset: String?
            var bytes: [UInt8] = []
            for (index, section) in ordered.enumerated() {
                var piece = Substring(section.1)
                if section.2, index == 0 {
                    // charset'language'percent-encoded
                    let pieces = piece.split(separator: "'", maxSplits: 2, omittingEmptySubsequences: false)
                    if pieces.count == 3 {
                        charset = String(pieces[0])
                        piece = pieces[2]
                    }
                }
                bytes += section.2 ? percentDecode(piece) : Array(piece.utf8)
            }
            parameters[name] = Charsets.decode(bytes, charset: charset).text
        }
        return HeaderValueWithParameters(value: value, parameters: parameters)
    }

    static func percentDecode(_ text: Substring) -> [UInt8] {
        let bytes = Array(text.utf8)
        var output: [UInt8] = []
        var index = 0
        while index < bytes.count {
            if bytes[index] == 0x25, index + 2 < bytes.count,
               let high = TransferEncoding.hexValue(bytes[index + 1]), let low = TransferEncoding.hexValue(bytes[index + 2]) {
                output.append(high << 4 | low)
                index += 3
            } else {
                output.append(bytes[index])
                index += 1
            }
        }
        return output
    }

    static func unescape(_ text: String) -> String {
        guard text.contains("\\") else { return text }
        var output = ""
        var escaped = false
        for character in text {
            if escaped { output.append(character); escaped = false } else if character == "\\" { escaped = true } else { output.append(character) }
        }
        return output
    }

    /// Removes RFC 5322 comments `(...)` outside quoted strings.
    static func stripComments(_ text: String) -> String {
        guard text.contains("(") else { return text }
        var output = ""
        var depth = 0
        var quoted = false
        var escaped = false
        for character in text {
            if escaped { if depth == 0 { output.append(character) }; escaped = false; continue }
            if character == "\\" { escaped = true; if depth == 0 { output.append(character) }; continue }
            if character == "\"" && depth == 0 { quoted.toggle() }
            if !quoted {
                if character == "(" { depth += 1; continue }
                if character == ")" && depth > 0 { depth -= 1; continue }
            }
            if depth == 0 { output.append(character) }
        }
        return output
    }

    /// Splits at `separator` outside quoted strings and angle brackets.
    static func splitOutsideQuotes(_ text: String, separator: Character) -> [String] {
        var parts: [String] = []
        var current = ""
        var quoted = false
        var angle = 0
        var escaped = false
        for character in text {
            if escaped { current.append(character); escaped = false; continue }
            if character == "\\" && quoted { escaped = true; current.append(character); continue }
            if character == "\"" { quoted.toggle() }
            if !quoted {
                if character == "<" { angle += 1 }
                if character == ">" && angle > 0 { angle -= 1 }
            }
            if character == separator && !quoted && angle == 0 {
                parts.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        parts.append(current)
        return parts
    }
}
