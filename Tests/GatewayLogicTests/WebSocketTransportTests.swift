import Glibc
import NIOCore
import NIOEmbedded
import Testing

@testable import Gateway

/// `WebSocketTransport` during a fan-out on its loop (`write(_:into:)`), on NIO's testing channel
/// with a socket pair as the connection's socket: a publication for a connection with nothing
/// queued joins the loop's send batch; one for a connection with messages queued goes after them.
@Suite struct WebSocketTransportTests {
    /// Stands where the frame encoder would: the context frames handed to NIO are written from.
    final class RawWriter: ChannelOutboundHandler, Sendable {
        typealias OutboundIn = ByteBuffer
    }

    struct Connection {
        let channel: EmbeddedChannel
        let transport: WebSocketTransport
        let pair: SendBatchTests.Pair

        init(unidirectional: Bool = false) throws {
            pair = try SendBatchTests.Pair()
            channel = EmbeddedChannel()
            transport = WebSocketTransport(
                channel: channel, socket: pair.local, batcher: FlushBatcher(eventLoop: channel.embeddedEventLoop, ioUring: false),
                maxQueueSize: 1 << 20, unidirectional: unidirectional)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8000)).wait()
            let writer = RawWriter()
            try channel.pipeline.syncOperations.addHandler(writer)
            transport.setRawWriter(try channel.pipeline.syncOperations.context(handler: writer))
        }

        /// The text frames' payloads the peer has received so far.
        func received() -> [String] {
            var bytes = ByteBuffer()
            var chunk = [UInt8](repeating: 0, count: 65536)
            while case let count = Glibc.read(pair.peer, &chunk, chunk.count), count > 0 { bytes.writeBytes(chunk[..<count]) }
            return WebSocketHandlerTests.frames(in: bytes).map { String(buffer: $0.payload) }
        }
    }

    @Test func aPublicationForAConnectionWithNothingQueuedGoesWithTheBatch() throws {
        let connection = try Connection()
        defer { connection.pair.close() }
        let batch = SendBatch(useRing: false)
        #expect(connection.transport.write(OutboundMessage(shared: #"{"push":{"n":1}}"#), into: batch))
        #expect(batch.count == 1)
        // Not queued: the loop has nothing to flush, and nothing is sent before the batch is.
        connection.channel.embeddedEventLoop.run()
        #expect(connection.received().isEmpty)
        batch.send()
        #expect(connection.received() == [#"{"push":{"n":1}}"#])
    }

    @Test func aPublicationForAConnectionWithAMessageQueuedGoesAfterIt() throws {
        let connection = try Connection()
        defer { connection.pair.close() }
        #expect(connection.transport.write(OutboundMessage(#"{"id":1,"publish":{}}"#)))
        let batch = SendBatch(useRing: false)
        #expect(connection.transport.write(OutboundMessage(shared: #"{"push":{"n":1}}"#), into: batch))
        #expect(batch.count == 0)
        batch.send()
        connection.channel.embeddedEventLoop.run()
        // Queued in the same tick: one frame, the reply first.
        #expect(connection.received() == [#"{"id":1,"publish":{}}"# + "\n" + #"{"push":{"n":1}}"#])
    }

    /// A unidirectional connection's push goes as a frame header in front of the payload without
    /// its wrapper, in the batch too.
    @Test func aUnidirectionalPushJoinsTheBatchUnwrapped() throws {
        let connection = try Connection(unidirectional: true)
        defer { connection.pair.close() }
        let batch = SendBatch(useRing: false)
        #expect(connection.transport.write(OutboundMessage(shared: #"{"push":{"channel":"a","pub":{"data":1}}}"#), into: batch))
        #expect(batch.count == 1)
        batch.send()
        #expect(connection.received() == [#"{"channel":"a","pub":{"data":1}}"#])
    }
}
