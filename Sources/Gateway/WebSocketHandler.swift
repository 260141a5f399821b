/// The inbound side of one WebSocket connection: what reads frames and hands messages to the
/// client's inbox (`WebSocketInbound`), and the NIO channel handler that drives it. That handler
/// is the connection's only one (behind NIO's frame codec only on an upgrade NIO's upgrader
/// answered).
import NIOCore
import NIOWebSocket
import Synchronization

/// The inbound side of one WebSocket connection on a NIO channel: its `WebSocketInbound` driven by
/// NIO's callbacks. Reads stop while the inbox is full.
final class WebSocketHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let inbound: WebSocketInbound
    private var readPending = false
    /// A unidirectional connection's connect request from its URL, run as its first message.
    private var connectRequest: ByteBuffer?

    /// `maxFrameSize`: the longest frame read; a longer one disconnects the client.
    init(node: Node, transport: WebSocketTransport, maxMessageSize: Int, maxFrameSize: Int, connectRequest: ByteBuffer? = nil) {
        self.inbound = WebSocketInbound(node: node, transport: transport, maxMessageSize: maxMessageSize, maxFrameSize: maxFrameSize)
        self.connectRequest = connectRequest
    }

    private var transport: WebSocketTransport { inbound.transport }
    private var client: Client { inbound.client }

    func handlerAdded(context: ChannelHandlerContext) {
        // Frames are written as bytes from this context, or from the context of NIO's frame
        // encoder where NIO's upgrader put one (below it, bytes go to the socket as they are).
        transport.setRawWriter((try? context.pipeline.syncOperations.context(handlerType: WebSocketFrameEncoder.self)) ?? context)
        let eventLoop = context.eventLoop
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: eventLoop)
        inbound.start(on: eventLoop, connectRequest: connectRequest.take()) {
            eventLoop.execute { bound.value.handler.resumeReading(bound.value.context) }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inbound.read(unwrapInboundIn(data)) { context.close(promise: nil) }
    }

    func read(context: ChannelHandlerContext) {
        if inbound.inbox.isFull {
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
        inbound.closed()
        context.fireChannelInactive()
    }
}

/// What one WebSocket connection reads, whoever owns its socket (`WebSocketHandler` for a NIO
/// channel, `SocketWebSocketHandler` for a connection of the gateway's own loop): frames read from
/// the bytes (`WebSocketFrameReader`: no frame decoder, no boxed frame per read), fragments
/// joined, WebSocket pings and the closing handshake answered, the message size limit enforced,
/// and complete messages handed to the client through an `Inbox` (commands of one connection run
/// in order). Its owner stops reading while the inbox is full, so a client that floods commands
/// is slowed down to the server's pace.
final class WebSocketInbound {
    let transport: WebSocketTransport
    let client: Client
    let inbox: Inbox
    private let maxMessageSize: Int
    private var reader: WebSocketFrameReader
    private var fragments: ByteBuffer?
    private var closeReceived = false

    /// `maxFrameSize`: the longest frame read; a longer one disconnects the client.
    init(node: Node, transport: WebSocketTransport, maxMessageSize: Int, maxFrameSize: Int) {
        self.reader = WebSocketFrameReader(maxFrameSize: maxFrameSize)
        self.transport = transport
        self.client = node.makeClient(transport: transport)
        self.inbox = Inbox(client: client)
        self.maxMessageSize = maxMessageSize
        transport.attach(client)
        node.metrics.connectionsAccepted.add(1, ordering: .relaxed)
    }

    /// The connection is served on `eventLoop`: the inbox runs there, and calls `resume` once a
    /// backlog that stopped reading is worked off. `connectRequest`: a unidirectional
    /// connection's connect request from its URL, run as its first message.
    func start(on eventLoop: any EventLoop, connectRequest: ByteBuffer?, resume: @escaping @Sendable () -> Void) {
        inbox.runOn(eventLoop)
        inbox.onDrained(resume)
        if let connectRequest { inbox.push(connectRequest) }
    }

    /// Reads `bytes`; `close` closes the connection at once (the peer answered our close frame).
    func read(_ bytes: ByteBuffer, close: () -> Void) {
        do {
            try reader.read(bytes) { frame in handle(frame, close: close) }
        } catch WebSocketFrameReader.Failure.tooLarge {
            client.disconnect(.messageTooLarge)
        } catch {
            client.disconnect(.badRequest)
        }
    }

    private func handle(_ frame: WebSocketFrameReader.Frame, close: () -> Void) {
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
                close()
                return
            }
            // The peer's close: echo its code, then close.
            var data = frame.payload
            let code = data.readWebSocketErrorCode() ?? .normalClosure
            var reply = ByteBuffer()
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

    /// The socket is closed.
    func closed() {
        transport.channelClosed()
        inbox.onDrained(nil)
        client.transportClosedInBackground { [transport] in transport.detach() }
    }
}
