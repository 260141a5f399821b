/// Watches an upload's bytes for what multipart-kit 4.7.1 cannot parse safely: it looks every byte
/// of a part's header names up in a 128-entry table, so a byte of 0x80 or more there traps and
/// takes the process down. The guard follows the framing (delimiter line, header lines, blank line)
/// and refuses such a byte before the parser sees it; file contents pass untouched.
struct MultipartHeaderGuard {
    struct Refused: Error {}

    private enum State {
        /// Inside a part's body (or the preamble), looking for the delimiter.
        case body
        /// After a delimiter, until the end of its line.
        case delimiterLine
        /// At or in a header name (`atLineStart` when nothing of it was read yet).
        case headerName(atLineStart: Bool)
        /// After a header's colon, until the end of its line.
        case headerValue
    }

    private let delimiter: [UInt8]
    private let failure: [Int]
    private var matched = 0
    private var state = State.body

    init(boundary: String) {
        delimiter = Array("--\(boundary)".utf8)
        // Knuth–Morris–Pratt failure function, so a boundary that overlaps itself is still found.
        var failure = [Int](repeating: 0, count: delimiter.count)
        var k = 0
        for i in 1..<max(1, delimiter.count) {
            while k > 0 && delimiter[i] != delimiter[k] { k = failure[k - 1] }
            if delimiter[i] == delimiter[k] { k += 1 }
            failure[i] = k
        }
        self.failure = failure
    }

    /// False when `bytes` put a byte the parser would trap on into a header name.
    mutating func accepts(_ bytes: some Sequence<UInt8>) -> Bool {
        for byte in bytes {
            switch state {
            case .body:
                while matched > 0 && byte != delimiter[matched] { matched = failure[matched - 1] }
                if byte == delimiter[matched] { matched += 1 }
                if matched == delimiter.count {
                    matched = 0
                    state = .delimiterLine
                }
            case .delimiterLine:
                if byte == UInt8(ascii: "\n") { state = .headerName(atLineStart: true) }
            case .headerName(let atLineStart):
                if byte == UInt8(ascii: ":") {
                    state = .headerValue
                } else if byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") {
                    // A blank line ends the headers; anything else the parser refuses by itself.
                    if atLineStart { state = byte == UInt8(ascii: "\n") ? .body : .headerName(atLineStart: true) } else { state = .body }
                    if byte == UInt8(ascii: "\n") { matched = 0 }
                } else if byte >= 0x80 {
                    return false
                } else {
                    state = .headerName(atLineStart: false)
                }
            case .headerValue:
                if byte == UInt8(ascii: "\n") { state = .headerName(atLineStart: true) }
            }
        }
        return true
    }
}
