/// Who owns a WebSocket connection's socket: a NIO channel, or a `SocketConnection` of the
/// gateway's own event loop. The transport writes to the socket directly while its owner holds
/// nothing for it, and hands it what the socket does not take.
import NIOCore

/// The owner of a connection's socket, as its transport sees it from any thread: its loop, and how
/// to close it.
enum SocketOwner: Sendable {
    case channel(any Channel)
    case connection(SocketConnection)

    var eventLoop: any EventLoop {
        switch self {
        case .channel(let channel): channel.eventLoop
        case .connection(let connection): connection.loop
        }
    }

    var allocator: ByteBufferAllocator {
        switch self {
        case .channel(let channel): channel.allocator
        case .connection(let connection): connection.loop.allocator
        }
    }

    /// Closes the socket now (what waits to be written is dropped); from any thread.
    func close() {
        switch self {
        case .channel(let channel):
            channel.close(promise: nil)
        case .connection(let connection):
            if connection.loop.inEventLoop {
                connection.close()
            } else {
                connection.loop.execute { connection.close() }
            }
        }
    }
}

/// Where bytes go that the socket did not take at once, behind any still waiting: the context of
/// the NIO handler nearest the socket, or the `SocketConnection`'s queue. Used on the loop only.
enum QueuedWriter {
    case context(NIOLoopBound<ChannelHandlerContext>)
    case connection(SocketConnection)

    /// Queues `frames` and flushes; the future succeeds once the last one is written (writes
    /// complete in order, so the owner then holds nothing of ours).
    func write(_ frames: ArraySlice<ByteBuffer>) -> EventLoopFuture<Void>? {
        guard !frames.isEmpty else { return nil }
        switch self {
        case .context(let bound):
            let context = bound.value
            var frames = frames
            let last = frames.popLast()!
            for frame in frames { context.write(NIOAny(frame), promise: nil) }
            let done = context.eventLoop.makePromise(of: Void.self)
            context.write(NIOAny(last), promise: done)
            context.flush()
            return done.futureResult
        case .connection(let connection):
            let done = connection.loop.makePromise(of: Void.self)
            connection.write(frames, promise: done)
            return done.futureResult
        }
    }
}
