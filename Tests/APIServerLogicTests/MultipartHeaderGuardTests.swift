/// The guard in front of multipart-kit: a byte of 0x80 or more in a part's header name is refused
/// before the parser (which would trap on it) sees it; the same bytes in a file's contents, in a
/// header's value, or split across chunks anywhere else pass.
@testable import APIServer
import Testing

struct MultipartHeaderGuardTests {
    static func body(headerName: String = "Content-Disposition", content: [UInt8] = Array("hello".utf8)) -> [UInt8] {
        Array("--XyZ\r\n\(headerName): form-data; name=\"file\"; filename=\"ä.txt\"\r\nContent-Type: text/plain\r\n\r\n".utf8)
            + content + Array("\r\n--XyZ--\r\n".utf8)
    }

    @Test func passesAnOrdinaryUploadWithHighBytesInValuesAndContent() {
        var guardian = MultipartHeaderGuard(boundary: "XyZ")
        let accepted = guardian.accepts(Self.body(content: [0xFF, 0x80, 0xC3, 0xA4, 0x2D, 0x2D]))
        #expect(accepted)
    }

    @Test func refusesAHighByteInAHeaderNameEvenAcrossChunks() {
        let body = Self.body(headerName: "Conte\u{17745}nt")
        var whole = MultipartHeaderGuard(boundary: "XyZ")
        let wholeAccepted = whole.accepts(body)
        #expect(!wholeAccepted)
        var chunked = MultipartHeaderGuard(boundary: "XyZ")
        var refused = false
        for byte in body where !chunked.accepts([byte]) { refused = true; break }
        #expect(refused)
        // The shape Schemathesis found: junk right after the delimiter line.
        var junk = MultipartHeaderGuard(boundary: "04ad")
        let junkAccepted = junk.accepts(Array("--04ad\r\n\u{17745}\u{13}--04ad--\r\n".utf8))
        #expect(!junkAccepted)
    }

    @Test func findsABoundaryThatOverlapsItself() {
        var guardian = MultipartHeaderGuard(boundary: "--ab")
        let overlapAccepted = guardian.accepts(Array("---" .utf8) + Array("----ab\r\n\u{E9}x: y\r\n".utf8))
        #expect(!overlapAccepted)
    }
}
