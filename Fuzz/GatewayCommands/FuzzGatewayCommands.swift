/// libFuzzer target: the gateway's JSON parser and command decoder, fed what a WebSocket client
/// may send (one message, possibly several newline-separated commands). Properties checked: no
/// trap; a parsed value re-serialises to JSON that parses to the same value (numbers compared by
/// value, since `2.0` is written `2`; a number too large for a Double is written `null`).


@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGatewayCommands(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
        guard let value = JSONValue.parse(line) else { continue }
        _ = try? Command(json: value)
        let text = value.serialized
        precondition(!text.utf8.contains(UInt8(ascii: "\n")), "serialised JSON contains a raw newline")
        guard let again = JSONValue.parse(Array(text.utf8)) else { preconditionFailure("serialised JSON does not parse: \(text)") }
        precondition(same(value, again), "round trip changed \(value) into \(again)")
    }
    return 0
}

func same(_ a: JSONValue, _ b: JSONValue) -> Bool {
    switch (a, b) {
    case (.int(let x), .double(let y)), (.double(let y), .int(let x)): return Double(x) == y
    case (.double(let x), .null): return !x.isFinite
    case (.double(let x), .double(let y)): return x == y
    case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
    case (.object(let x), .object(let y)):
        return x.count == y.count && x.allSatisfy { key, value in y[key].map { same(value, $0) } ?? false }
    default: return a == b
    }
}
