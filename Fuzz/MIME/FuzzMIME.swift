/// libFuzzer target: the MIME parser that reads inbound mail (headers, encoded words, charsets,
/// transfer encodings, nested multiparts, attachments) from any sender. Property checked: no trap,
/// and the parse is deterministic.
import Mail

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMIME(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let mail = MIMEParser.parse(bytes)
    precondition(mail.attachments.count <= MIMEParser.maxParts, "more attachments than parts allowed")
    let again = MIMEParser.parse(bytes)
    precondition(again.text == mail.text && again.subject == mail.subject, "the same bytes parsed differently")
    return 0
}
