/// Text in a declared charset to Swift strings: UTF-8 (invalid bytes repaired), US-ASCII,
/// ISO-8859-1, ISO-8859-15 and Windows-1252 by table; others through Foundation when it knows
/// them. An unknown charset is read as UTF-8, else Windows-1252, and reported.
import Foundation

public enum Charsets {
    /// Decodes `bytes` written in `charset` (nil: UTF-8). `known` is false when the charset is unknown.
    public static func decode<Bytes: Collection>(_ bytes: Bytes, charset: String?) -> (text: String, known: Bool)
    where Bytes.Element == UInt8 {
        let name = (charset ?? "utf-8").trimmingCharacters(in: CharacterSet(charactersIn: "\"' ")).lowercased()
        switch name {
        case "utf-8", "utf8", "":
            return (utf8OrWindows1252(bytes), true)
        case "us-ascii", "ascii", "ansi_x3.4-1968", "iso646-us":
            // Mail that says ASCII often is not: 8-bit bytes are read as UTF-8, else Windows-1252.
            return (utf8OrWindows1252(bytes), true)
        case "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "iso_8859-1", "cp819":
            return (String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) })), true)
        case "windows-1252", "cp1252", "x-cp1252":
            return (windows1252(bytes), true)
        case "iso-8859-15", "iso8859-15", "latin9", "latin-9":
            return (String(String.UnicodeScalarView(bytes.map { latin9[$0] ?? Unicode.Scalar($0) })), true)
        default:
            if let encoding = foundationEncoding(name), let text = String(data: Data(bytes), encoding: encoding) {
                return (text, true)
            }
            return (utf8OrWindows1252(bytes), false)
        }
    }

    /// Valid UTF-8 as is; otherwise Windows-1252 (what 8-bit mail without a charset usually is).
    static func utf8OrWindows1252<Bytes: Collection>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        return windows1252(bytes)
    }

    /// Header bytes: RFC 6532 allows UTF-8; anything else 8-bit is read as Windows-1252.
    static func decodeHeaderBytes(_ bytes: ArraySlice<UInt8>) -> String { utf8OrWindows1252(bytes) }

    static func windows1252<Bytes: Collection>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var scalars = String.UnicodeScalarView()
        for byte in bytes {
            if (0x80...0x9F).contains(byte), let scalar = cp1252High[Int(byte) - 0x80] {
                scalars.append(scalar)
            } else {
                scalars.append(Unicode.Scalar(byte))
            }
        }
        return String(scalars)
    }

    /// 0x80–0x9F of Windows-1252 (nil: undefined, kept as the C1 control).
    static let cp1252High: [Unicode.Scalar?] = [
        "\u{20AC}", nil, "\u{201A}", "\u{0192}", "\u{201E}", "\u{2026}", "\u{2020}", "\u{2021}",
        "\u{02C6}", "\u{2030}", "\u{0160}", "\u{2039}", "\u{0152}", nil, "\u{017D}", nil,
        nil, "\u{2018}", "\u{2019}", "\u{201C}", "\u{201D}", "\u{2022}", "\u{2013}", "\u{2014}",
        "\u{02DC}", "\u{2122}", "\u{0161}", "\u{203A}", "\u{0153}", nil, "\u{017E}", "\u{0178}",
    ]

    /// Where ISO-8859-15 differs from ISO-8859-1.
    static let latin9: [UInt8: Unicode.Scalar] = [
        0xA4: "\u{20AC}", 0xA6: "\u{0160}", 0xA8: "\u{0161}", 0xB4: "\u{017D}", 0xB8: "\u{017E}", 0xBC: "\u{0152}",
        0xBD: "\u{0153}", 0xBE: "\u{0178}",
    ]

    static func foundationEncoding(_ name: String) -> String.Encoding? {
        switch name {
        case "utf-16": return .utf16
        case "utf-16be": return .utf16BigEndian
        case "utf-16le": return .utf16LittleEndian
        case "iso-8859-2", "latin2": return .isoLatin2
        case "windows-1250", "cp1250": return .windowsCP1250
        case "windows-1251", "cp1251": return .windowsCP1251
        case "windows-1253", "cp1253": return .windowsCP1253
        case "windows-1254", "cp1254": return .windowsCP1254
        case "shift_jis", "shift-jis", "sjis": return .shiftJIS
        case "iso-2022-jp": return .iso2022JP
        case "euc-jp": return .japaneseEUC
        default: return nil
        }
    }
}
