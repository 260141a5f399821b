/// Content-Transfer-Encoding (RFC 2045 §6): base64 and quoted-printable, decoded leniently (mail
/// in the wild breaks both), and encoded for the mail Switchboard writes.
import Foundation

public enum TransferEncoding {
    /// Decodes base64, skipping whitespace and characters outside the alphabet; stops at padding.
    /// `clean` is false when something had to be skipped or the input was cut short.
    public static func decodeBase64<Bytes: Collection>(_ input: Bytes) -> (bytes: [UInt8], clean: Bool) where Bytes.Element == UInt8 {
        var output: [UInt8] = []
        output.reserveCapacity(input.count * 3 / 4)
        var buffer: UInt32 = 0
        var bits = 0
        var clean = true
        var ended = false
        for byte in input {
            let value: UInt8
            switch byte {
            case 0x41...0x5A: value = byte - 0x41
            case 0x61...0x7A: value = byte - 0x61 + 26
            case 0x30...0x39: value = byte - 0x30 + 52
            case 0x2B, 0x2D: value = 62  // '+', and '-' of base64url
            case 0x2F, 0x5F: value = 63  // '/', and '_' of base64url
            case 0x3D: ended = true; continue
            case 0x20, 0x09, 0x0D, 0x0A: continue
            default: clean = false; continue
            }
            if ended { clean = false; ended = false }
            buffer = (buffer << 6) | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8((buffer >> UInt32(bits)) & 0xFF))
            }
        }
        if bits >= 6 { clean = false }
        return (output, clean)
    }

    /// Decodes quoted-printable: `=XX` escapes and `=` soft line breaks; a stray `=` is kept.
    public static func decodeQuotedPrintable<Bytes: Collection>(_ input: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        let bytes = Array(input)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0x3D {
                // Soft line break: "=" then optional blanks then CRLF or LF.
                var next = index + 1
                while next < bytes.count, bytes[next] == 0x20 || bytes[next] == 0x09 { next += 1 }
                if next < bytes.count, bytes[next] == 0x0A { index = next + 1; continue }
                if next + 1 < bytes.count, bytes[next] == 0x0D, bytes[next + 1] == 0x0A { index = next + 2; continue }
                if next == bytes.count { index = next; continue }
                if index + 2 < bytes.count, let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) {
                    output.append(high << 4 | low)
                    index += 3
                    continue
                }
                output.append(byte)
                index += 1
                continue
            }
            output.append(byte)
            index += 1
        }
        return output
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: return byte - 0x30
        case 0x41...0x46: return byte - 0x41 + 10
        case 0x61...0x66: return byte - 0x61 + 10
        default: return nil
        }
    }

    /// Quoted-printable for a UTF-8 text body: lines of at most 76 characters, CRLF line ends.
    public static func encodeQuotedPrintable(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var lines: [String] = []
        let normalized = text.replacingOccurrences(of: "\r\n", with: "\n")
        for line in normalized.split(separator: "\n", omittingEmptySubsequences: false) {
            var out: [UInt8] = []
            var length = 0
            let bytes = Array(line.utf8)
            for (position, byte) in bytes.enumerated() {
                let isLast = position == bytes.count - 1
                var piece: [UInt8]
                if (byte >= 33 && byte <= 126 && byte != 0x3D) || ((byte == 0x20 || byte == 0x09) && !isLast) {
                    piece = [byte]
                } else {
                    piece = [0x3D, hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
                }
                if length + piece.count > 75 {
                    out += Array("=\r\n".utf8)
                    length = 0
                }
                out += piece
                length += piece.count
            }
            lines.append(String(decoding: out, as: UTF8.self))
        }
        return lines.joined(separator: "\r\n")
    }

    /// Base64 in lines of 76 characters (CRLF).
    public static func encodeBase64Lines(_ bytes: [UInt8]) -> String {
        let encoded = Data(bytes).base64EncodedString()
        var lines: [Substring] = []
        var index = encoded.startIndex
        while index < encoded.endIndex {
            let end = encoded.index(index, offsetBy: 76, limitedBy: encoded.endIndex) ?? encoded.endIndex
            lines.append(encoded[index..<end])
            index = end
        }
        return lines.joined(separator: "\r\n")
    }
}
