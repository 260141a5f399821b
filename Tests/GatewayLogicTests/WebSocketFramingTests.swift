import NIOCore
import Testing

@testable import Gateway

@Suite struct WebSocketFramingTests {
    /// Reads back one unmasked server frame: (opcode, payload).
    func decode(_ frame: ByteBuffer) throws -> (UInt8, String) {
        var frame = frame
        let first = frame.readInteger(as: UInt8.self) ?? 0
        #expect(first & 0x80 != 0, "FIN set")
        let second = frame.readInteger(as: UInt8.self) ?? 0xFF
        #expect(second & 0x80 == 0, "server frames are not masked")
        var length = Int(second & 0x7F)
        if length == 126 {
            length = Int(frame.readInteger(as: UInt16.self) ?? 0)
        } else if length == 127 {
            length = Int(frame.readInteger(as: UInt64.self) ?? 0)
        }
        #expect(frame.readableBytes == length)
        let payload = frame.readString(length: length)
        return (first & 0x0F, try #require(payload))
    }

    @Test(arguments: [0, 1, 125, 126, 127, 65535, 65536, 70000])
    func framesCarryTheirPayloadAtEveryLengthEncoding(_ length: Int) throws {
        let text = String(repeating: "x", count: length)
        let (opcode, payload) = try decode(WebSocketFraming.frame(ByteBuffer(string: text)))
        #expect(opcode == 0x1)
        #expect(payload == text)

        var joined = WebSocketFraming.payloadBuffer(capacity: length)
        joined.writeString(text)
        WebSocketFraming.frame(inPlace: &joined)
        #expect(try decode(joined).1 == text)
    }

    @Test func aSharedMessageKeepsItsPayloadAndFrame() throws {
        let message = OutboundMessage(shared: #"{"push":{"channel":"a","pub":{"data":1}}}"#)
        #expect(String(buffer: message.payload) == #"{"push":{"channel":"a","pub":{"data":1}}}"#)
        #expect(try decode(#require(message.frame)).1 == String(buffer: message.payload))
    }
}
