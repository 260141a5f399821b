/// libFuzzer target: client WebSocket frames read from a connection's bytes
/// (`WebSocketFrameReader`), fed whatever a client may send after the upgrade. The first input byte
/// picks where the bytes are split into two reads; the rest are the bytes. Properties checked: no
/// trap; the frames and the failure do not depend on where the network split the bytes; no payload
/// is longer than the frame limit; a control frame is whole and at most 125 bytes.
import NIOCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWebSocketFrames(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = ByteBuffer(bytes: UnsafeRawBufferPointer(start: data + 1, count: size - 1))
    let split = Int(data[0]) % (bytes.readableBytes + 1)
    let whole = read([bytes])
    let parts = read([bytes.getSlice(at: 0, length: split)!, bytes.getSlice(at: split, length: bytes.readableBytes - split)!])
    precondition(whole.failure == parts.failure, "the failure depends on the split: \(whole.failure as Any) / \(parts.failure as Any)")
    precondition(whole.frames == parts.frames, "the frames depend on the split")
    for frame in whole.frames {
        precondition(frame.payload.count <= maxFrameSize)
        if frame.opcode & 0x08 != 0 { precondition(frame.fin && frame.payload.count <= 125) }
    }
    return 0
}

private let maxFrameSize = 1024

private struct ReadFrame: Equatable {
    var fin: Bool
    var opcode: UInt8
    var payload: [UInt8]
}

private func read(_ reads: [ByteBuffer]) -> (frames: [ReadFrame], failure: WebSocketFrameReader.Failure?) {
    var reader = WebSocketFrameReader(maxFrameSize: maxFrameSize)
    var frames: [ReadFrame] = []
    for bytes in reads {
        do {
            try reader.read(bytes) { frames.append(ReadFrame(fin: $0.fin, opcode: $0.opcode, payload: Array($0.payload.readableBytesView))) }
        } catch {
            return (frames, error)
        }
    }
    return (frames, nil)
}
