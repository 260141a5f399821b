/// Server WebSocket frames written as bytes (headers, whole frames, frames built in place).
import NIOCore

/// Server frames (unmasked) written as bytes, so a shared frame goes out without per-connection work.
enum WebSocketFraming {
    static let continuationOpcode: UInt8 = 0x0
    static let textOpcode: UInt8 = 0x1
    static let binaryOpcode: UInt8 = 0x2
    static let closeOpcode: UInt8 = 0x8
    static let pingOpcode: UInt8 = 0x9
    static let pongOpcode: UInt8 = 0xA

    /// Room for the longest header (opcode byte, length byte, 64-bit length).
    static let maxHeaderSize = 10

    static func headerSize(payloadLength: Int) -> Int {
        payloadLength < 126 ? 2 : payloadLength <= 0xFFFF ? 4 : 10
    }

    /// `fin`: false for a fragment that more follow (the server sends none; a frame handed on
    /// from NIO's decoder may be one).
    static func writeHeader(opcode: UInt8, payloadLength length: Int, to buffer: inout ByteBuffer, at index: Int, fin: Bool = true) {
        buffer.setInteger((fin ? 0x80 : 0) | opcode, at: index)
        if length < 126 {
            buffer.setInteger(UInt8(length), at: index + 1)
        } else if length <= 0xFFFF {
            buffer.setInteger(UInt8(126), at: index + 1)
            buffer.setInteger(UInt16(length), at: index + 2)
        } else {
            buffer.setInteger(UInt8(127), at: index + 1)
            buffer.setInteger(UInt64(length), at: index + 2)
        }
    }

    /// Writes a header to `bytes` (room for `maxHeaderSize`); returns its size.
    static func writeHeader(opcode: UInt8, payloadLength length: Int, to bytes: UnsafeMutableRawBufferPointer) -> Int {
        bytes[0] = 0x80 | opcode
        if length < 126 {
            bytes[1] = UInt8(length)
            return 2
        }
        if length <= 0xFFFF {
            bytes[1] = 126
            bytes.storeBytes(of: UInt16(length).bigEndian, toByteOffset: 2, as: UInt16.self)
            return 4
        }
        bytes[1] = 127
        bytes.storeBytes(of: UInt64(length).bigEndian, toByteOffset: 2, as: UInt64.self)
        return 10
    }

    /// Runs `body` with the header of a text frame of `payloadLength` bytes, built on the stack
    /// (for a frame sent as its header and its payload where it is).
    static func withTextHeader<Result>(payloadLength: Int, _ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        var header: (UInt64, UInt64) = (0, 0)
        return withUnsafeMutableBytes(of: &header) { raw in
            let size = writeHeader(opcode: textOpcode, payloadLength: payloadLength, to: raw)
            return body(UnsafeRawBufferPointer(rebasing: raw[..<size]))
        }
    }

    /// A new frame holding `payload`.
    static func frame(_ payload: ByteBuffer, opcode: UInt8 = textOpcode, fin: Bool = true) -> ByteBuffer {
        let header = headerSize(payloadLength: payload.readableBytes)
        var frame = ByteBufferAllocator().buffer(capacity: header + payload.readableBytes)
        frame.moveWriterIndex(forwardBy: header)
        writeHeader(opcode: opcode, payloadLength: payload.readableBytes, to: &frame, at: 0, fin: fin)
        frame.writeImmutableBuffer(payload)
        return frame
    }

    /// An empty buffer with room in front for the header, to append payloads to.
    static func payloadBuffer(capacity: Int) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: maxHeaderSize + capacity)
        buffer.moveWriterIndex(forwardBy: maxHeaderSize)
        buffer.moveReaderIndex(forwardBy: maxHeaderSize)
        return buffer
    }

    /// Turns a buffer from `payloadBuffer` into a frame in place.
    static func frame(inPlace buffer: inout ByteBuffer) {
        let length = buffer.readableBytes
        let start = buffer.readerIndex - headerSize(payloadLength: length)
        writeHeader(opcode: textOpcode, payloadLength: length, to: &buffer, at: start)
        buffer.moveReaderIndex(to: start)
    }
}
