/// RFC 2047 encoded words in header text (`=?UTF-8?B?...?=`, `=?ISO-8859-1?Q?...?=`): decoded
/// for reading, written for non-ASCII subjects and names. Whitespace between two adjacent encoded
/// words is dropped, as the RFC says.
import Foundation

public enum EncodedWords {
    /// `text` with its encoded words decoded; malformed words are left as written.
    public static func decode(_ text: String) -> String {
        guard text.contains("=?") else { return text }
        var output = ""
        var rest = Substring(text)
        var pendingSpace = ""
        var lastWasEncoded = false
        while !rest.isEmpty {
            if rest.hasPrefix("=?"), let (decoded, after) = decodeWord(rest) {
                // Whitespace between two encoded words disappears.
                if !lastWasEncoded { output += pendingSpace }
                pendingSpace = ""
                output += decoded
                rest = after
                lastWasEncoded = true
                continue
            }
            let character = rest.removeFirst()
            if character == " " || character == "\t" || character == "\r\n" || character == "\n" {
                pendingSpace.append(character == "\t" ? " " : (character == " " ? " " : ""))
                continue
            }
            output += pendingSpace
            pendingSpace = ""
            output.append(character)
            lastWasEncoded = false
        }
        return output + pendingSpace
    }

    /// One encoded word at the start of `text`: its text and what follows it.
    static func decodeWord(_ text: Substring) -> (String, Substring)? {
        // =?charset?encoding?encoded-text?=
        let body = text.dropFirst(2)
        guard let q1 = body.firstIndex(of: "?") else { return nil }
        var charset = String(body[..<q1])
        if let star = charset.firstIndex(of: "*") { charset = String(charset[..<star]) }  // RFC 2231 language
        let afterCharset = body[body.index(after: q1)...]
        guard let q2 = afterCharset.firstIndex(of: "?") else { return nil }
        let encoding = afterCharset[..<q2].uppercased()
        let payloadStart = afterCharset.index(after: q2)
        guard let end = afterCharset[payloadStart...].range(of: "?=") else { return nil }
        let payload = afterCharset[payloadStart..<end.lowerBound]
        guard !charset.isEmpty, !payload.contains(" ") else { return nil }
        let bytes: [UInt8]
        switch encoding {
        case "B": bytes = TransferEncoding.decodeBase64(Array(payload.utf8)).bytes
        case "Q": bytes = decodeQ(payload)
        default: return nil
        }
        return (Charsets.decode(bytes, charset: charset).text, afterCharset[end.upperBound...])
    }

    /// The "Q" encoding: quoted-printable where `_` is a space.
    static func decodeQ(_ text: Substring) -> [UInt8] {
        TransferEncoding.decodeQuotedPrintable(text.utf8.map { $0 == 0x5F ? 0x20 : $0 })
    }

    /// `text` as is when it is printable ASCII, else as UTF-8 "B" encoded words of at most 75
    /// characters each (separated by a folding space).
    public static func encode(_ text: String) -> String {
        if text.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F }) { return text }
        var words: [String] = []
        var chunk: [UInt8] = []
        // 75 - "=?UTF-8?B?" - "?=" = 63 base64 characters: 45 bytes; whole characters only.
        for character in text {
            let bytes = Array(String(character).utf8)
            if chunk.count + bytes.count > 45 {
                words.append("=?UTF-8?B?\(Data(chunk).base64EncodedString())?=")
                chunk = []
            }
            chunk += bytes
        }
        if !chunk.isEmpty { words.append("=?UTF-8?B?\(Data(chunk).base64EncodedString())?=") }
        return words.joined(separator: " ")
    }
}
