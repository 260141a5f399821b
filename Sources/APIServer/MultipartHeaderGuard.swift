/// Watches an upload's bytes for what multipart-kit 4.7.1 cannot parse safely: it looks every byte
/// of a part's header names up in a 128-entry table, so a byte of 0x80 or more there traps and
/// takes the process down. The guard runs the parser's own state machine (`MultipartParser`:
/// preamble, delimiter, header lines, body) byte for byte beside it, so it knows exactly which
/// bytes the parser will read as a header name, and refuses such a byte before the parser sees it.
/// File contents pass untouched. (An earlier guard that only approximated the framing let a
/// header name through after a delimiter hidden in a header value; libFuzzer found it.)
struct MultipartHeaderGuard {
    struct Refused: Error {}

    /// The parser's states, as `MultipartParser` keeps them (without the bytes it collects).
    private enum State {
        case preamble(matched: Int)
        /// Expecting the CR (`awaitingLF` false) or the LF of the line break after a delimiter.
        case preHeaders(awaitingLF: Bool)
        case headerName(empty: Bool)
        case headerValue
        /// After a header value's CR: the LF must follow.
        case postHeaderValue
        /// After the blank line's CR: the LF must follow.
        case postHeaders
        case body
        case boundary(matched: Int)
        case epilogue
        /// The parser refuses the input from here on (it throws); nothing more can reach it.
        case refused
    }

    private let delimiter: [UInt8]
    private var state = State.preamble(matched: 0)

    init(boundary: String) {
        delimiter = Array("\r\n--\(boundary)".utf8)
    }

    /// False when `bytes` put a byte the parser would trap on into a header name.
    mutating func accepts(_ bytes: some Sequence<UInt8>) -> Bool {
        let cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n")
        for byte in bytes {
            switch state {
            case .preamble(var matched):
                // As the parser does: the first delimiter may come without its leading CRLF.
                if matched == 0, byte == delimiter[2] {
                    matched = 3
                } else if byte == delimiter[matched] {
                    matched += 1
                } else if matched > 0, byte == delimiter[0] {
                    matched = 1
                } else {
                    matched = 0
                }
                state = matched >= delimiter.count ? .preHeaders(awaitingLF: false) : .preamble(matched: matched)
            case .preHeaders(let awaitingLF):
                if !awaitingLF, byte == cr {
                    state = .preHeaders(awaitingLF: true)
                } else if awaitingLF, byte == lf {
                    state = .headerName(empty: true)
                } else {
                    state = .refused
                }
            case .headerName(let empty):
                if byte == UInt8(ascii: ":"), !empty {
                    state = .headerValue
                } else if byte == cr, empty {
                    state = .postHeaders
                } else if byte >= 0x80 {
                    // The parser would index its 128-entry table with this byte.
                    return false
                } else if Self.isTokenCharacter(byte) {
                    state = .headerName(empty: false)
                } else {
                    state = .refused
                }
            case .headerValue:
                if byte == cr { state = .postHeaderValue }
            case .postHeaderValue:
                state = byte == lf ? .headerName(empty: true) : .refused
            case .postHeaders:
                state = byte == lf ? .body : .refused
            case .body:
                if byte == delimiter[0] { state = .boundary(matched: 1) }
            case .boundary(let matched):
                if matched >= delimiter.count {
                    state = byte == cr ? .preHeaders(awaitingLF: true) : byte == UInt8(ascii: "-") ? .epilogue : .refused
                } else if byte == delimiter[matched] {
                    state = .boundary(matched: matched + 1)
                } else {
                    state = byte == delimiter[0] ? .boundary(matched: 1) : .body
                }
            case .epilogue, .refused:
                return true
            }
        }
        return true
    }

    /// A header name byte below 0x80 that the parser takes (RFC 822 token: no control characters,
    /// space or tspecials), exactly as its table says.
    static func isTokenCharacter(_ byte: UInt8) -> Bool {
        guard byte > 32, byte < 127 else { return false }
        return !"()<>@,;:\\\"/[]?={}".utf8.contains(byte)
    }
}
