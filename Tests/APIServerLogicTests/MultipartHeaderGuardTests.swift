/// The guard in front of multipart-kit: a byte of 0x80 or more in a part's header name is refused
/// before the parser (which would trap on it) sees it; the same bytes in a file's contents, in a
/// header's value, or split across chunks anywhere else pass.
@testable import APIServer
import Foundation
import MultipartKit
import NIOCore
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

    /// Runs multipart-kit's parser over what the guard accepted, as FilesAPI does (a wrong guess
    /// by the guard traps here, which fails the run).
    static func parse(_ bytes: [UInt8], boundary: String) -> (accepted: Bool, headers: [String]) {
        var guardian = MultipartHeaderGuard(boundary: boundary)
        guard guardian.accepts(bytes) else { return (false, []) }
        let parser = MultipartParser(boundary: boundary)
        nonisolated(unsafe) var headers: [String] = []
        parser.onHeader = { name, _ in headers.append(name) }
        try? parser.execute(ByteBuffer(bytes: bytes))
        return (true, headers)
    }

    /// libFuzzer's find: a line that looks like a delimiter to a looser matcher but not to the
    /// parser, then a real delimiter inside what looked like a header value, then a header name
    /// with a high byte. The guard follows the parser's own matching, so it sees that header name.
    @Test func followsTheParsersOwnDelimiterMatching() {
        let found = Array("---fuzzboundary\r\nX: \r\n--fuzzboundary\r\n".utf8) + [0xFF] + Array(": y\r\n\r\nbody".utf8)
        #expect(Self.parse(found, boundary: "fuzzboundary").accepted == false)
        // The parser's preamble does not find `--ab` in `-------ab` (it restarts without
        // backtracking), so what follows is preamble, high bytes and all.
        let overlap = Self.parse(Array("-------ab\r\n\u{E9}x: y\r\n\r\n".utf8), boundary: "--ab")
        #expect(overlap.accepted && overlap.headers.isEmpty)
        // And where the parser does find the delimiter, the header name is checked.
        #expect(Self.parse(Array("----ab\r\n\u{E9}x: y\r\n\r\n".utf8), boundary: "--ab").accepted == false)
        #expect(Self.parse(Array("----ab\r\nX-\u{E9}: y\r\n\r\n".utf8), boundary: "--ab").accepted == false)
        #expect(Self.parse(Array("----ab\r\nX: \u{E9}\r\n\r\n\u{E9}".utf8), boundary: "--ab") == (true, ["X"]))
    }

    /// Every seed of the libFuzzer target, split at every point, through guard and parser.
    @Test func theFuzzSeedsPassInEveryTwoPieceSplit() throws {
        let seeds = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Fuzz/corpus/multipart")
        let files = try FileManager.default.contentsOfDirectory(at: seeds.standardizedFileURL, includingPropertiesForKeys: nil)
        #expect(!files.isEmpty)
        for file in files {
            let bytes = Array(try Data(contentsOf: file))
            for split in 0...bytes.count {
                var guardian = MultipartHeaderGuard(boundary: "fuzzboundary")
                let parser = MultipartParser(boundary: "fuzzboundary")
                for piece in [bytes[..<split], bytes[split...]] {
                    guard guardian.accepts(piece) else { break }
                    do { try parser.execute(ByteBuffer(bytes: piece)) } catch { break }
                }
            }
        }
    }
}
