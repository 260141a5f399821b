/// One IMAP mailbox read with libcurl (`imap://` with STARTTLS required or tried, or `imaps://`):
/// the UIDs of unseen messages, a message's bytes fetched with `BODY.PEEK[]` (so fetching does not
/// mark it seen; libcurl hands custom commands' literals only to its debug stream, so the literal
/// is cut from the transcript), and marking a message seen once it is stored.
import CCurl
import Foundation

public struct IMAPMailbox: Sendable {
    /// `imap://host:port/INBOX` (the mailbox is the path).
    public var url: String
    public var options: CurlOptions

    public init(serverURL: String, mailbox: String, options: CurlOptions) {
        var base = serverURL
        while base.hasSuffix("/") { base.removeLast() }
        // Only scheme://host[:port] is kept from the server URL; the mailbox is URL-encoded.
        if let components = URLComponents(string: base), let scheme = components.scheme, let host = components.host {
            base = "\(scheme)://\(host)" + (components.port.map { ":\($0)" } ?? "")
        }
        let encoded = mailbox.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? mailbox
        url = "\(base)/\(encoded)"
        self.options = options
    }

    /// UIDs of the messages without `\Seen`, ascending.
    public func unseenUIDs() async throws -> [Int] {
        let result = try await CurlTransfer.perform(url: url, options: options) { handle, _ in
            sb_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, "UID SEARCH UNSEEN")
        }
        return Self.searchResults(result.body)
    }

    static func searchResults(_ body: [UInt8]) -> [Int] {
        let text = String(decoding: body, as: UTF8.self)
        var uids: [Int] = []
        for line in text.split(whereSeparator: { $0 == "\r\n" || $0 == "\n" }) where line.uppercased().hasPrefix("* SEARCH") {
            uids += line.dropFirst("* SEARCH".count).split(separator: " ").compactMap { Int($0) }
        }
        return uids.sorted()
    }

    /// The whole message `uid`, without setting `\Seen`; nil when the server has no such message.
    public func fetch(uid: Int) async throws -> [UInt8]? {
        let result = try await CurlTransfer.perform(url: url, options: options) { handle, _ in
            sb_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, "UID FETCH \(uid) BODY.PEEK[]")
        }
        return Self.literal(in: result.transcript, uid: uid)
    }

    /// The literal of the `* n FETCH (... BODY[] {size}` response in an IMAP transcript.
    static func literal(in transcript: [UInt8], uid: Int) -> [UInt8]? {
        var index = 0
        while index < transcript.count {
            guard let lineEnd = transcript[index...].firstIndex(of: 0x0A) else { return nil }
            let line = transcript[index..<lineEnd]
            index = lineEnd + 1
            let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard text.hasPrefix("* "), text.uppercased().contains("FETCH"), text.uppercased().contains("BODY[]"), text.hasSuffix("}"),
                  let open = text.lastIndex(of: "{"), let size = Int(text[text.index(after: open)..<text.index(before: text.endIndex)])
            else { continue }
            guard index + size <= transcript.count else { return nil }
            return Array(transcript[index..<(index + size)])
        }
        return nil
    }

    /// Sets `\Seen` on message `uid`.
    public func markSeen(uid: Int) async throws {
        _ = try await CurlTransfer.perform(url: url, options: options) { handle, _ in
            sb_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, "UID STORE \(uid) +FLAGS (\\Seen)")
        }
    }
}
