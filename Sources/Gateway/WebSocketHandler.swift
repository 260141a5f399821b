/// The inbound side of one WebSocket connection: the NIO channel handler that reads frames and hands
/// messages to the client's inbox. It is the connection's only handler (behind NIO's frame codec
/// only on an upgrade NIO's upgrader answered).
import NIOCore
import NIOWebSocket
import Synchronization

/// The inbound side of one WebSocket connection, driven by NIO callbacks: reads frames from the
/// bytes (`WebSocketFrameReader`: no frame decoder or encoder handlers, no boxed frame per read),
/// joins fragments, answers WebSocket pings and the closing handshake, enforces the message size
/// limit, and hands complete messages to the client through an `Inbox` (commands of one connection
/// run in order). Reads stop while the inbox is full, so a client that floods commands is slowed
/// down to the server's pace.
final class WebSocketHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let transport: WebSocketTransport
    private let client: Client
    private let inbox: Inbox
    private let maxMessageSize: Int
    private var reader: WebSocketFrameReader
    private var fragments: ByteBuffer?
    private var readPending = false
    private var closeReceived = false
    /// A unidirectional connection's connect request from its URL, run as its first message.
    private var connectRequest: ByteBuffer?

    /// `maxFrameSize`: the longest frame read; a longer one disconnects the client.
    init(node: Node, transport: WebSocketTransport, maxMessageSize: Int, maxFrameSize: Int, connectRequest: ByteBuffer? = nil) {
        self.reader = WebSocketFrameReader(maxFrameSize: maxFrameSize)
        self.transport = transport
        self.connectRequest = connectRequest
        self.client = node.makeClient(transport: transport)
        self.inbox = Inbox(client: client)
        self.maxMessageSize = maxMessageSize
        transport.attach(client)
        node.metrics.connectionsAccepted.add(1, ordering: .relaxed)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // Frames are written as bytes from this context, or from the context of NIO's frame
        // encoder where NIO's upgrader put one (below it, bytes go to the socket as they are).
        transport.setRawWriter((try? context.pipeline.syncOperations.context(handlerType: WebSocketFrameEncoder.self)) ?? context)
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
        do {
            try reader.read(unwrapInboundIn(data)) { frame in handle(frame, context: context) }
        } catch WebSocketFrameReader.Failure.tooLarge {
            client.disconnect(.messageTooLarge)
        } catch {
            client.disconnect(.badRequest)
        }
    }

    private func handle(_ frame: WebSocketFrameReader.Frame, context: ChannelHandlerContext) {
        switch frame.opcode {
        case WebSocketFraming.textOpcode, WebSocketFraming.binaryOpcode:
            if frame.fin, fragments == nil {
                receive(frame.payload)
            } else {
                fragments = frame.payload
                checkSize()
            }
        case WebSocketFraming.continuationOpcode:
            guard var buffer = fragments else { return }
            var data = frame.payload
            buffer.writeBuffer(&data)
            fragments = buffer
            if checkSize(), frame.fin {
                fragments = nil
                receive(buffer)
            }
        case WebSocketFraming.pingOpcode:
            transport.sendControlFrame(opcode: WebSocketFraming.pongOpcode, payload: frame.payload)
        case WebSocketFraming.pongOpcode:
            client.pongReceived()
        case WebSocketFraming.closeOpcode:
            guard !closeReceived else { return }
            closeReceived = true
            // The answer to our own close frame: the handshake is complete.
            guard transport.peerClosed() else {
                context.close(promise: nil)
                return
            }
            // The peer's close: echo its code, then close.
            var data = frame.payload
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
        // NIO's frame decoder's errors, on an upgrade NIO's upgrader answered.
        if error is NIOWebSocketError {
            client.disconnect(.messageTooLarge)
        } else if let decoderError = error as? ByteToMessageDecoderError, case .dataReceivedInErrorState = decoderError {
            // The rest of a frame the decoder refused: dropped, as `WebSocketFrameReader` drops
            // what follows a refused frame; the close handshake's timeout ends the connection.
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
