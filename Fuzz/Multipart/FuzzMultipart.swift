/// libFuzzer target: the upload path's multipart reading — `MultipartHeaderGuard` in front of
/// multipart-kit's `MultipartParser`, exactly as `FilesAPI` feeds them, in two pieces split where
/// the first byte says. Property checked: whatever the guard lets through, the parser takes without
/// trapping (it may refuse it with an error).
import MultipartKit
import NIOCore



@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMultipart(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let split = bytes.isEmpty ? 0 : Int(data[0]) % (bytes.count + 1)
    let boundary = "fuzzboundary"
    let parser = MultipartParser(boundary: boundary)
    nonisolated(unsafe) var seen = 0
    parser.onHeader = { name, value in seen += name.utf8.count + value.utf8.count }
    parser.onBody = { buffer in seen += buffer.readableBytes }
    parser.onPartComplete = { seen += 1 }
    var headerGuard = MultipartHeaderGuard(boundary: boundary)
    for piece in [bytes[..<split], bytes[split...]] {
        guard headerGuard.accepts(piece) else { return 0 }
        do { try parser.execute(ByteBuffer(bytes: piece)) } catch { return 0 }
    }
    return 0
}
