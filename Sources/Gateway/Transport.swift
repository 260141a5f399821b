/// What a client writes to: the `Transport` protocol and the `OutboundMessage` it carries.
import NIOCore

/// Where a client's messages go. `write` only queues (it never blocks); it answers false once the
/// client's queue limit is exceeded, and the caller disconnects the client as slow.
protocol Transport: AnyObject, Sendable {
    func write(_ message: OutboundMessage) -> Bool
    func close(_ disconnect: Disconnect)
}

extension Transport {
    func write(_ message: String) -> Bool {
        write(OutboundMessage(message))
    }
}

/// One server → client message: its JSON text and, for a message many connections send (a
/// fanned-out publication), the whole WebSocket frame built once and shared by all of them.
struct OutboundMessage: Sendable {
    let payload: ByteBuffer
    let frame: ByteBuffer?

    init(_ text: String) {
        payload = ByteBuffer(string: text)
        frame = nil
    }

    init(shared text: String) {
        self.init(sharedPayload: ByteBuffer(string: text))
    }

    init(sharedPayload: ByteBuffer) {
        payload = sharedPayload
        frame = WebSocketFraming.frame(sharedPayload)
    }
}
