import Foundation

/// The content type of an upload, decided from its first bytes (the client's claim is not
/// trusted): PDF and ZIP magic numbers, HTML markup, UTF-8 text; the name only tells Markdown
/// from plain text and a DOCX from another ZIP.
public enum ContentSniffer {
    public static let pdf = "application/pdf"
    public static let docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    public static let html = "text/html"
    public static let markdown = "text/markdown"
    public static let plainText = "text/plain"

    /// How many leading bytes `sniff` looks at.
    public static let prefixLength = 4096

    /// nil when the bytes are none of the documents Switchboard reads.
    public static func sniff(prefix: some Collection<UInt8>, name: String) -> String? {
        let head = Array(prefix.prefix(prefixLength))
        let ext = (name as NSString).pathExtension.lowercased()
        if head.starts(with: Array("%PDF-".utf8)) { return pdf }
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) { return ext == "docx" ? docx : nil }
        guard !head.isEmpty, !head.contains(0), isText(head) else { return nil }
        let start = String(decoding: head.prefix(512), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        if start.hasPrefix("<!doctype html") || start.hasPrefix("<html") || (["html", "htm", "xhtml"].contains(ext) && start.hasPrefix("<")) {
            return html
        }
        if ["md", "markdown"].contains(ext) { return markdown }
        return plainText
    }

    /// UTF-8 (a sequence cut at the end of the prefix is fine) or Windows-1252-looking text.
    static func isText(_ bytes: [UInt8]) -> Bool {
        var index = 0
        var controls = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte < 0x20, byte != 0x09, byte != 0x0A, byte != 0x0D, byte != 0x0C { controls += 1 }
            if byte < 0x80 { index += 1; continue }
            let length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 0
            if length == 0 { return false }
            let end = index + length
            if end > bytes.count { break }  // cut by the prefix
            if !bytes[(index + 1)..<end].allSatisfy({ $0 & 0xC0 == 0x80 }) { return false }
            index = end
        }
        return controls * 100 <= bytes.count
    }
}
