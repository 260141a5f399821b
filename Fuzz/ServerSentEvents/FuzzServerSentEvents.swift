/// libFuzzer target: the `text/event-stream` parser that reads a model server's streamed answer,
/// fed the input in two pieces split where the first byte says (the network splits anywhere).
/// Properties checked: no trap; the events do not depend on where the bytes were split.


@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzServerSentEvents(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let split = bytes.isEmpty ? 0 : Int(data[0]) % (bytes.count + 1)

    var whole = ServerSentEventParser(maximumLineLength: 4096)
    var wholeEvents: [ServerSentEvent] = []
    var wholeFailed = false
    do { wholeEvents = try whole.feed(bytes) } catch { wholeFailed = true }
    if !wholeFailed, let last = whole.finish() { wholeEvents.append(last) }

    var pieces = ServerSentEventParser(maximumLineLength: 4096)
    var pieceEvents: [ServerSentEvent] = []
    var piecesFailed = false
    do {
        pieceEvents = try pieces.feed(bytes[..<split])
        pieceEvents += try pieces.feed(bytes[split...])
    } catch {
        piecesFailed = true
    }
    if !piecesFailed, let last = pieces.finish() { pieceEvents.append(last) }

    precondition(wholeFailed == piecesFailed, "a line was too long in one feeding and not in the other")
    if !wholeFailed { precondition(wholeEvents == pieceEvents, "events depend on where the stream was split") }
    return 0
}
