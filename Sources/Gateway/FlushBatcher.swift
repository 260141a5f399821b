/// Per-event-loop flushing of every connection that queued messages in one tick.
import NIOCore
import Synchronization

/// A transport that writes what queued when its event loop's batcher runs it.
protocol BatchFlushed: AnyObject, Sendable {
    /// Writes what queued; on the event loop.
    func flush()
    /// `flush()`, leaving a frame that goes to the socket whole in one send to `batch`, which
    /// sends it once every connection of the tick has flushed.
    func flush(into batch: SendBatch)
}

extension BatchFlushed {
    func flush(into batch: SendBatch) { flush() }
}

/// Flushes, once per event-loop tick, every connection of one event loop that queued messages, so
/// a publication fanned out to thousands of connections costs one task on each loop, not one per
/// connection.
final class FlushBatcher: Sendable {
    let eventLoop: any EventLoop
    private let pending = Mutex<[any BatchFlushed]>([])
    /// Touched only in `run`, on the event loop.
    private let sends: SendBatch

    /// `ioUring`: the tick's sends go through an io_uring instance of the loop's own where the
    /// kernel allows it (the `fanout_io_uring` setting).
    init(eventLoop: any EventLoop, ioUring: Bool = true, metrics: Metrics? = nil) {
        self.eventLoop = eventLoop
        sends = SendBatch(useRing: ioUring, metrics: metrics)
    }

    func schedule(_ transport: any BatchFlushed) {
        let first = pending.withLock { pending in
            pending.append(transport)
            return pending.count == 1
        }
        if first { eventLoop.execute { self.run() } }
    }

    private func run() {
        let transports = pending.withLock { pending in
            let transports = pending
            pending.removeAll(keepingCapacity: true)
            return transports
        }
        // Between a connection adding its frame and the batch sending it only other connections'
        // flushes run, and none of them closes this connection's socket (closing is a task of
        // its own), so the descriptor still is this connection's when the batch sends.
        for transport in transports { transport.flush(into: sends) }
        sends.send()
    }
}
