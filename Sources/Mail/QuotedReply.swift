/// The quoted earlier conversation under (or around) a reply: Gmail/Apple "On … wrote:" (also
/// wrapped over two lines, and in German, French, Spanish, Dutch), Outlook's "-----Original
/// Message-----" and its `From:`/`Sent:` block or underscore rule, and a trailing block of `>`
/// lines. `strip` cuts at the first of them; the full text is kept elsewhere.
import Foundation

public enum QuotedReply {
    /// `text` without the quoted conversation and trailing blank lines. Text that is nothing but a
    /// quote is returned whole (better to answer a forwarded quote than an empty message).
    public static func strip(_ text: String) -> String {
        let lines = text.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false)
            .map(String.init)
        var cut = lines.count
        for index in lines.indices where isQuoteStart(lines, at: index) {
            cut = index
            break
        }
        // A trailing block of ">" lines (bottom-quoting without an attribution line).
        var end = cut
        while end > 0, lines[end - 1].trimmingCharacters(in: .whitespaces).isEmpty { end -= 1 }
        var start = end
        while start > 0, lines[start - 1].hasPrefix(">") { start -= 1 }
        if start < end { cut = start }
        let kept = lines[..<cut].joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        return kept.isEmpty ? text.trimmingCharacters(in: .whitespacesAndNewlines) : kept
    }

    static let attributionEndings = ["wrote:", "a écrit :", "a écrit:", "schrieb:", "escribió:", "schreef:", "scrisse:", "skrev:", "napisał(a):"]
    static let attributionStarts = ["on ", "am ", "le ", "el ", "op ", "il ", "den ", "w dniu "]

    /// "… wrote:", or "… schrieb Name <address>:" (the name after the verb).
    static func isAttribution(_ lower: String) -> Bool {
        if attributionEndings.contains(where: { lower.hasSuffix($0) }) { return true }
        guard lower.hasSuffix(":") else { return false }
        return attributionVerbs.contains { lower.contains(" \($0) ") }
    }

    static let attributionVerbs = ["wrote", "écrit", "schrieb", "escribió", "schreef", "scrisse", "skrev", "napisał(a)"]

    static func isQuoteStart(_ lines: [String], at index: Int) -> Bool {
        let line = lines[index].trimmingCharacters(in: .whitespaces)
        let lower = line.lowercased()
        if lower.hasPrefix("-----original message-----") || lower.hasPrefix("----- original message -----")
            || lower.hasPrefix("-------- original message --------") || lower.hasPrefix("---------- forwarded message") {
            return true
        }
        // Outlook: an underscore rule, or a header block, above the quoted mail.
        if line.count >= 20, line.allSatisfy({ $0 == "_" }) { return true }
        if lower.hasPrefix("from:"), index + 1 < lines.count {
            let next = lines[(index + 1)...].prefix(3).map { $0.lowercased().trimmingCharacters(in: .whitespaces) }
            if next.contains(where: { $0.hasPrefix("sent:") || $0.hasPrefix("date:") || $0.hasPrefix("to:") || $0.hasPrefix("subject:") }) { return true }
        }
        // "On Mon, 2 Jan 2026 at 10:00, Ada <ada@example.com> wrote:", maybe wrapped onto the next line.
        if attributionStarts.contains(where: { lower.hasPrefix($0) }) {
            if isAttribution(lower) { return true }
            if index + 1 < lines.count, isAttribution(lower + " " + lines[index + 1].lowercased().trimmingCharacters(in: .whitespaces)) {
                return true
            }
        }
        return false
    }
}
