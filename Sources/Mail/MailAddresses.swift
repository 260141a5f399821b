/// Address lists (RFC 5322 §3.4: `"Name" <a@b>`, `a@b (Name)`, groups) and Message-ID lists
/// (`<id@host>` tokens in In-Reply-To and References).
import Foundation

public enum MailAddresses {
    /// The addresses in an address-list header; display names decoded.
    public static func parse(_ text: String) -> [MailAddress] {
        var addresses: [MailAddress] = []
        // Groups ("Team: a@b, c@d;") list their members like any other addresses.
        let withoutGroups = text.replacingOccurrences(of: ";", with: ",")
        for part in HeaderValueWithParameters.splitOutsideQuotes(withoutGroups, separator: ",") {
            var item = part.trimmingCharacters(in: .whitespaces)
            if let colon = groupColon(item) { item = String(item[item.index(after: colon)...]).trimmingCharacters(in: .whitespaces) }
            guard !item.isEmpty else { continue }
            if let open = item.lastIndex(of: "<"), let close = item[open...].firstIndex(of: ">") {
                let address = item[item.index(after: open)..<close].trimmingCharacters(in: .whitespaces)
                var name = item[..<open].trimmingCharacters(in: .whitespaces)
                if name.hasPrefix("\""), name.hasSuffix("\""), name.count >= 2 { name = HeaderValueWithParameters.unescape(String(name.dropFirst().dropLast())) }
                guard address.contains("@") || !address.isEmpty else { continue }
                addresses.append(MailAddress(name: EncodedWords.decode(name), address: address))
            } else {
                // bare address, maybe with a trailing "(Name)" comment
                var name: String?
                if let open = item.firstIndex(of: "("), let close = item.lastIndex(of: ")"), open < close {
                    name = String(item[item.index(after: open)..<close])
                    item = String(item[..<open]).trimmingCharacters(in: .whitespaces)
                }
                guard item.contains("@"), !item.contains(" ") else { continue }
                addresses.append(MailAddress(name: name.map(EncodedWords.decode), address: item))
            }
        }
        return addresses
    }

    /// The colon of a group's display name (`Team: ...`), not one inside quotes or an address.
    static func groupColon(_ text: String) -> String.Index? {
        var quoted = false
        for index in text.indices {
            let character = text[index]
            if character == "\"" { quoted.toggle() }
            if quoted { continue }
            if character == "<" || character == "@" { return nil }
            if character == ":" { return index }
        }
        return nil
    }

    /// The Message-IDs in an In-Reply-To or References field, without angle brackets, in order.
    /// Text outside brackets (comments, phrases some clients add) is ignored; a field without
    /// brackets is read as blank-separated ids that contain `@`.
    public static func messageIDs(_ text: String?) -> [String] {
        guard let text, !text.isEmpty else { return [] }
        var ids: [String] = []
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "<"), let close = rest[open...].firstIndex(of: ">") {
            let id = rest[rest.index(after: open)..<close].trimmingCharacters(in: .whitespaces)
            if !id.isEmpty { ids.append(id) }
            rest = rest[rest.index(after: close)...]
        }
        if ids.isEmpty {
            ids = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," }).map(String.init).filter { $0.contains("@") }
        }
        return ids
    }
}
