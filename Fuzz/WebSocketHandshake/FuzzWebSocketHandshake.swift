/// libFuzzer target: the WebSocket upgrade request read by hand (`WebSocketHandshake.read`), fed
/// whatever a stranger may send first on the public port. Properties checked: no trap; an upgrade's
/// (or an `EventSource` request's) head ends with its blank line and within the input; the outcome
/// of a head does not change with bytes sent after it (frames), and one byte fewer is never the
/// same kind of outcome; the `101` carries a 28-character accept value.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWebSocketHandshake(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let outcome = WebSocketHandshake.read(input)
    switch outcome {
    case .eventStream(let stream):
        checkHead(length: stream.headLength, of: input, outcome: outcome)
        let shorter = UnsafeRawBufferPointer(rebasing: input[..<(stream.headLength - 1)])
        if case .eventStream = WebSocketHandshake.read(shorter) { preconditionFailure("an event stream without its last byte") }
    case .upgrade(let upgrade):
        checkHead(length: upgrade.headLength, of: input, outcome: outcome)
        let shorter = UnsafeRawBufferPointer(rebasing: input[..<(upgrade.headLength - 1)])
        if case .upgrade = WebSocketHandshake.read(shorter) { preconditionFailure("an upgrade without its last byte") }
        let response = String(decoding: WebSocketHandshake.response(key: upgrade.key), as: UTF8.self)
        precondition(response.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n") && response.hasSuffix("\r\n\r\n"))
        let accept = response.split(separator: "\r\n").first { $0.hasPrefix("Sec-WebSocket-Accept: ") }
        precondition(accept?.utf8.count == 22 + 28, "accept value \(String(describing: accept))")
    case .incomplete, .other:
        break
    }
    return 0
}

/// A head of `length` bytes lies within `input`, ends with a blank line, and is read alone as it
/// was with what followed it.
private func checkHead(length: Int, of input: UnsafeRawBufferPointer, outcome: WebSocketHandshake.Outcome) {
    precondition(length <= input.count, "head of \(length) bytes in \(input.count)")
    precondition(length >= 4 && Array(input[(length - 4)..<length]) == Array("\r\n\r\n".utf8), "the head ends with a blank line")
    let head = UnsafeRawBufferPointer(rebasing: input[..<length])
    precondition(WebSocketHandshake.read(head) == outcome, "bytes after the head changed its outcome")
}
