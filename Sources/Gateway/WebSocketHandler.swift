/// The inbound side of one WebSocket connection: the NIO channel handler that reads frames and hands
/// messages to the client's inbox.
import NIOCore
import NIOWebSocket
import Synchronization

/// The inbound side of one WebSocket connection, driven by NIO callbacks: joins fragments, answers
/// WebSocket pings and the closing handshake, enforces the message size limit, and hands complete
/// messages to the client through an `Inbox` (commands of one connection run in order). Reads stop
/// while the inbox is full, so a client that floods commands is slowed down to the server's pace.
final class WebSocketHandler: ChannelDuplexHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let transport: WebSocketTransport
    private let client: Client
    private let inbox: Inbox
    private let maxMessageSize: Int
    private var fragments: ByteBuffer?
    private var readPending = false
    private var closeReceived = false
    /// A unidirectional connection's connect request from its URL, run as its first message.
    private var connectRequest: ByteBuffer?

    init(node: Node, transport: WebSocketTransport, maxMessageSize: Int, connectRequest: ByteBuffer? = nil) {
        self.transport = transport
        self.connectRequest = connectRequest
        self.client = node.makeClient(transport: transport)
        self.inbox = Inbox(client: client)
        self.maxMessageSize = maxMessageSize
        transport.attach(client)
        node.metrics.connectionsAccepted.add(1, ordering: .relaxed)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // The upgrader put the frame encoder nearest the socket; raw frames are written from its context.
        guard let encoder = try? context.pipeline.syncOperations.context(handlerType: WebSocketFrameEncoder.self) else {
            context.close(promise: nil)
            return
        }
        transport.setRawWriter(encoder)
        let eventLoop = context.eventLoop
        inbox.runOn(eventLoop)
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: eventLoop)
        inbox.onDrained { eventLoop.execute { bound.value.handler.resumeReading(bound.value.context) } }
        if let connectRequest {
            self.connectRequest = nil
            inbox.push(connectRequest)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary:
            if frame.fin, fragments == nil {
                receive(frame.unmaskedData)
            } else {
                fragments = frame.unmaskedData
                checkSize()
            }
        case .continuation:
            guard var buffer = fragments else { return }
            var data = frame.unmaskedData
            buffer.writeBuffer(&data)
            fragments = buffer
            if checkSize(), frame.fin {
                fragments = nil
                receive(buffer)
            }
        case .ping:
            var pong = frame.unmaskedData
            if pong.readableBytes > 125 { pong = pong.getSlice(at: pong.readerIndex, length: 125)! }
            transport.sendControlFrame(opcode: WebSocketFraming.pongOpcode, payload: pong)
        case .pong:
            client.pongReceived()
        case .connectionClose:
            guard !closeReceived else { return }
            closeReceived = true
            // The answer to our own close frame: the handshake is complete.
            guard transport.peerClosed() else {
                context.close(promise: nil)
                return
            }
            // The peer's close: echo its code, then close.
            var data = frame.unmaskedData
            let code = data.readWebSocketErrorCode() ?? .normalClosure
            var reply = context.channel.allocator.buffer(capacity: 2)
            reply.write(webSocketErrorCode: code)
            transport.sendControlFrame(opcode: WebSocketFraming.closeOpcode, payload: reply, thenClose: true)
        default:
            break
        }
    }

    /// False (and the client disconnected) when the message being assembled is too large.
    @discardableResult
    private func checkSize() -> Bool {
        guard let fragments, fragments.readableBytes > maxMessageSize else { return true }
        self.fragments = nil
        client.disconnect(.messageTooLarge)
        return false
    }

    private func receive(_ message: ByteBuffer) {
        guard message.readableBytes <= maxMessageSize else {
            client.disconnect(.messageTooLarge)
            return
        }
        if client.handlePong(message) { return }
        inbox.push(message)
    }

    func read(context: ChannelHandlerContext) {
        if inbox.isFull {
            readPending = true
        } else {
            context.read()
        }
    }

    private func resumeReading(_ context: ChannelHandlerContext) {
        guard readPending else { return }
        readPending = false
        context.read()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is NIOWebSocketError {
            client.disconnect(.messageTooLarge)
        } else if let decoderError = error as? ByteToMessageDecoderError, case .dataReceivedInErrorState = decoderError {
            // The rest of a frame the decoder refused, arriving after it: dropped. Closing here
            // would cut the close handshake short (the 3501 close frame was lost with the reset
            // that closing on unread bytes sends); the handshake's timeout ends the connection.
            return
        } else {
            context.close(promise: nil)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        transport.writabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        transport.channelClosed()
        inbox.onDrained(nil)
        client.transportClosedInBackground { [transport] in transport.detach() }
        context.fireChannelInactive()
    }
}
