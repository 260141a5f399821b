/// Per-event-loop flushing of every connection that queued messages in one tick, and the fan-out of
/// a publication to one loop's connections.
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

    /// Sends made during a fan-out before the batch goes to the kernel: the first subscribers get
    /// their frame while the loop still adds the others'.
    static let fanOutChunk = 256

    /// Runs `deliver` for each of `clients` (connections of this loop) in one task on the loop,
    /// sending the batch each `fanOutChunk` sends and before the task ends. A connection whose
    /// message can go to its socket now adds it to the batch (`Transport.write(_:into:)`); one
    /// with messages queued queues behind them, flushed by `schedule`'s task as before.
    ///
    /// Tasks run on the loop in the order they were submitted, so each connection gets a
    /// channel's publications in the order they were fanned out.
    func fanOut(_ clients: [ObjectIdentifier: Client], deliver: @escaping @Sendable (Client, SendBatch) -> Void) {
        eventLoop.execute {
            // Nothing else runs on the loop until the task ends, so no socket a frame was added
            // for is closed before the batch is sent (as in `run`).
            for client in clients.values {
                deliver(client, self.sends)
                if self.sends.count >= Self.fanOutChunk { self.sends.send() }
            }
            self.sends.send()
        }
    }
}
