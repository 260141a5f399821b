/// Client WebSocket frames read from a connection's bytes (RFC 6455, section 5.2): the frame
/// decoder of `WebSocketHandler`, without a handler of its own in the pipeline.
import NIOCore

/// Reads the frames a client sends from the bytes as they arrive, keeping an incomplete frame's
/// bytes for the next read. Payloads come out unmasked. A frame longer than `maxFrameSize`, a control
/// frame that is fragmented or longer than 125 bytes, or reserved bits set (no extension is
/// negotiated) fail the reader; it reads nothing after a failure, as the connection is closing.
struct WebSocketFrameReader {
    struct Frame {
        var fin: Bool
        var opcode: UInt8
        var payload: ByteBuffer
    }

    enum Failure: Error, Equatable {
        /// Longer than `maxFrameSize`.
        case tooLarge
        /// Not a frame a client may send.
        case malformed
    }

    let maxFrameSize: Int
    /// The bytes of a frame not complete yet.
    private var pending: ByteBuffer?
    private(set) var failed = false

    init(maxFrameSize: Int) {
        self.maxFrameSize = maxFrameSize
    }

    /// Takes the bytes of one read and hands `frame` every frame they complete, in order.
    mutating func read(_ bytes: ByteBuffer, frame: (Frame) -> Void) throws(Failure) {
        guard !failed else { return }
        var buffer: ByteBuffer
        if var pending = pending.take() {
            var bytes = bytes
            pending.writeBuffer(&bytes)
            buffer = pending
        } else {
            buffer = bytes
        }
        do {
            while let next = try Self.next(in: &buffer, maxFrameSize: maxFrameSize) { frame(next) }
        } catch {
            failed = true
            throw error
        }
        if buffer.readableBytes > 0 {
            buffer.discardReadBytes()
            pending = buffer
        }
    }

    /// The first whole frame in `buffer` (moving past it), or nil while it is incomplete.
    static func next(in buffer: inout ByteBuffer, maxFrameSize: Int) throws(Failure) -> Frame? {
        let start = buffer.readerIndex
        guard let first = buffer.getInteger(at: start, as: UInt8.self), let second = buffer.getInteger(at: start + 1, as: UInt8.self)
        else { return nil }
        guard first & 0x70 == 0 else { throw .malformed }
        let fin = first & 0x80 != 0
        let opcode = first & 0x0F
        var headerSize = 2
        var length: Int
        switch second & 0x7F {
        case 126:
            guard let extended = buffer.getInteger(at: start + 2, as: UInt16.self) else { return nil }
            length = Int(extended)
            headerSize = 4
        case 127:
            guard let extended = buffer.getInteger(at: start + 2, as: UInt64.self) else { return nil }
            guard extended <= UInt64(maxFrameSize) else { throw .tooLarge }
            length = Int(extended)
            headerSize = 10
        case let short:
            length = Int(short)
        }
        // Control frames (close, ping, pong and the reserved 0xB-0xF) are whole and short.
        if opcode & 0x08 != 0, !fin || length > 125 { throw .malformed }
        guard length <= maxFrameSize else { throw .tooLarge }
        let masked = second & 0x80 != 0
        let maskSize = masked ? 4 : 0
        guard buffer.readableBytes >= headerSize + maskSize + length else { return nil }
        let mask = masked ? buffer.getInteger(at: start + headerSize, as: UInt32.self)! : 0
        buffer.moveReaderIndex(forwardBy: headerSize + maskSize)
        var payload = buffer.readSlice(length: length)!
        if masked, length > 0 { unmask(&payload, key: mask) }
        return Frame(fin: fin, opcode: opcode, payload: payload)
    }

    /// XORs the payload with the four key bytes in turn (section 5.3); `key` holds them in
    /// network order.
    private static func unmask(_ payload: inout ByteBuffer, key: UInt32) {
        let keyBytes = key.bigEndian
        payload.withUnsafeMutableReadableBytes { bytes in
            withUnsafeBytes(of: keyBytes) { key in
                for index in bytes.indices { bytes[index] ^= key[index & 3] }
            }
        }
    }
}
