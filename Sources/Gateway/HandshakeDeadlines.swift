/// The handshake timeout of one event loop's new connections, kept in arrival order and expired by
/// one timer instead of a scheduled task per connection.
import NIOCore
import Synchronization

/// One connection's handshake deadline: it closes the connection when it expires, unless cancelled
/// first (the handshake is done). Cancelling lets go of the connection at once.
final class HandshakeDeadline: Sendable {
    private let owner: Mutex<SocketOwner?>

    fileprivate init(_ owner: SocketOwner) {
        self.owner = Mutex(owner)
    }

    func cancel() {
        _ = owner.withLock { $0.take() }
    }

    fileprivate func expire() {
        owner.withLock { $0.take() }?.close()
    }
}

/// Every deadline of one event loop has the same timeout, so they expire in the order they were
/// started: a queue, checked by one timer at most once a second (a deadline closes its connection
/// between `timeout` and `timeout` + 1 s after it started). A scheduled task per connection cost a
/// new connection the event loop's task heap twice (insert, and a search to cancel).
final class HandshakeDeadlines: Sendable {
    private struct State {
        var queue = CircularBuffer<(at: NIODeadline, deadline: HandshakeDeadline)>()
        var armed = false
    }

    static let resolution = TimeAmount.seconds(1)

    let eventLoop: any EventLoop
    let timeout: TimeAmount
    private let state = Mutex(State())

    init(eventLoop: any EventLoop, timeout: TimeAmount) {
        self.eventLoop = eventLoop
        self.timeout = timeout
    }

    /// Starts `channel`'s deadline.
    func start(closing channel: any Channel) -> HandshakeDeadline {
        start(closing: .channel(channel))
    }

    /// Starts the deadline of a connection of the gateway's own loop.
    func start(closing connection: SocketConnection) -> HandshakeDeadline {
        start(closing: .connection(connection))
    }

    private func start(closing owner: SocketOwner) -> HandshakeDeadline {
        let deadline = HandshakeDeadline(owner)
        let at = NIODeadline.now() + timeout
        let arm = state.withLock { state in
            state.queue.append((at, deadline))
            defer { state.armed = true }
            return !state.armed
        }
        if arm { eventLoop.scheduleTask(deadline: at) { self.expire() } }
        return deadline
    }

    private func expire() {
        let now = NIODeadline.now()
        let (expired, next) = state.withLock { state in
            var expired: [HandshakeDeadline] = []
            while let first = state.queue.first, first.at <= now {
                expired.append(state.queue.removeFirst().deadline)
            }
            let next = state.queue.first.map { max($0.at, now + Self.resolution) }
            state.armed = next != nil
            return (expired, next)
        }
        for deadline in expired { deadline.expire() }
        if let next { eventLoop.scheduleTask(deadline: next) { self.expire() } }
    }
}
