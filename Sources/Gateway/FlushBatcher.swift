/// Per-event-loop flushing of every connection that queued messages in one tick.
import NIOCore
import Synchronization

/// A transport that writes what queued when its event loop's batcher runs it.
protocol BatchFlushed: AnyObject, Sendable {
    /// Writes what queued; on the event loop.
    func flush()
}

/// Flushes, once per event-loop tick, every connection of one event loop that queued messages, so
/// a publication fanned out to thousands of connections costs one task on each loop, not one per
/// connection.
final class FlushBatcher: Sendable {
    let eventLoop: any EventLoop
    private let pending = Mutex<[any BatchFlushed]>([])

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
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
        for transport in transports { transport.flush() }
    }
}
