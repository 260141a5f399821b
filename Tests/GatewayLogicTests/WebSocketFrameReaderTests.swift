import NIOCore
import Testing

@testable import Gateway

/// Client frames read from bytes: unmasked, whole whatever the reads' boundaries, and refused when
/// no client may send them.
@Suite struct WebSocketFrameReaderTests {
    typealias Failure = WebSocketFrameReader.Failure

    /// Every frame `reads` complete, or the failure that stopped the reader.
    func frames(_ reads: [[UInt8]], maxFrameSize: Int = 1024) -> (frames: [(fin: Bool, opcode: UInt8, payload: String)], failure: Failure?) {
        var reader = WebSocketFrameReader(maxFrameSize: maxFrameSize)
        var frames: [(fin: Bool, opcode: UInt8, payload: String)] = []
        for bytes in reads {
            do {
                try reader.read(ByteBuffer(bytes: bytes)) { frames.append(($0.fin, $0.opcode, String(buffer: $0.payload))) }
            } catch {
                return (frames, error)
            }
        }
        return (frames, nil)
    }

    /// RFC 6455, section 5.7: a masked "Hello", then the same unmasked (the reader takes both).
    static let maskedHello: [UInt8] = [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
    static let plainHello: [UInt8] = [0x81, 0x05] + Array("Hello".utf8)

    @Test func theRFCsExamplesAreRead() {
        let read = frames([Self.maskedHello + Self.plainHello])
        #expect(read.failure == nil)
        #expect(read.frames.map(\.payload) == ["Hello", "Hello"])
        #expect(read.frames.allSatisfy { $0.fin && $0.opcode == 0x1 })
    }

    @Test func framesSplitAnywhereAreReadWhole() {
        let long = WebSocketHandlerTests.clientFrame(ByteBuffer(string: String(repeating: "ab", count: 200)))
        let bytes = Self.maskedHello + Array(long.readableBytesView) + [0x89, 0x80, 1, 2, 3, 4]
        for split in 0...bytes.count {
            let read = frames([Array(bytes[..<split]), Array(bytes[split...])])
            #expect(read.failure == nil)
            #expect(read.frames.map(\.opcode) == [0x1, 0x1, 0x9], "split at \(split)")
            #expect(read.frames.map(\.payload) == ["Hello", String(repeating: "ab", count: 200), ""], "split at \(split)")
        }
        let byteByByte = frames(bytes.map { [$0] })
        #expect(byteByByte.frames.count == 3)
    }

    @Test func aFragmentKeepsItsFinBit() {
        let read = frames([[0x01, 0x02] + Array("He".utf8) + [0x80, 0x03] + Array("llo".utf8)])
        #expect(read.frames.map(\.fin) == [false, true])
        #expect(read.frames.map(\.opcode) == [0x1, 0x0])
    }

    /// A frame announced longer than the limit is refused from its header, before its payload.
    @Test func aFrameOverTheLimitIsRefusedFromItsHeader() {
        #expect(frames([[0x81, 0xFE, 0x04, 0x01]], maxFrameSize: 1024).failure == .tooLarge)
        #expect(frames([[0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0]]).failure == .tooLarge)
        #expect(frames([[0x81, 0xFE, 0x04, 0x00]], maxFrameSize: 1024).failure == nil, "1,024 bytes: still incomplete, not refused")
    }

    @Test(arguments: [
        [UInt8]([0x09, 0x80, 0, 0, 0, 0]),  // a fragmented ping
        [0x88, 0xFE, 0x00, 0x7E] + [UInt8](repeating: 0, count: 130),  // a close frame of 126 bytes
        [0xC1, 0x80, 0, 0, 0, 0],  // a reserved bit (no extension was negotiated)
    ])
    func framesNoClientMaySendFailTheReader(bytes: [UInt8]) {
        #expect(frames([bytes]).failure == .malformed)
    }

    @Test func aFailedReaderReadsNothingMore() {
        var reader = WebSocketFrameReader(maxFrameSize: 1024)
        #expect(throws: Failure.malformed) { try reader.read(ByteBuffer(bytes: [0xC1, 0x80, 0, 0, 0, 0])) { _ in } }
        var count = 0
        try? reader.read(ByteBuffer(bytes: Self.plainHello)) { _ in count += 1 }
        #expect(count == 0)
        #expect(reader.failed)
    }
}
