/// The gateway's own event loop for the public port (the `socket_layer: own` setting): one thread
/// waiting in edge-triggered `epoll`, accepting connections itself and serving them as
/// `SocketConnection`s, with tasks and timers as NIO's `EventLoop` protocol asks, so futures, the
/// flush batcher, handshake deadlines and the inbox's executor run on it unchanged.
import CSocket
import Foundation
import Glibc
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// An event loop of the gateway's own, shaped as nginx serves a connection: a socket accepted on
/// the loop that serves it (every loop waits on the listening socket, `EPOLLEXCLUSIVE` waking one),
/// added to `epoll` once for reading and writing (edge-triggered, its descriptor as the event's
/// data) and removed by `close` alone. NIO's channel machinery (registration futures, a pipeline,
/// a read allocator, a close sequence) cost a new connection about as much as the kernel's own
/// work (docs/benchmarks/gateway.md, "A fifteenth set").
///
/// Tasks from other threads wake the loop through an `eventfd`; scheduled tasks wait in a heap of
/// the loop's own (a cancelled one is dropped when its time comes). Connections are kept in an
/// array indexed by descriptor. Once stopped, the loop hands whatever is still submitted to it
/// (a future's callbacks, a task's next step) to one of NIO's loops, its successor, so nothing
/// waiting on it hangs.
final class SocketLoop: EventLoop, @unchecked Sendable {
    private struct Shared {
        var tasks: [@Sendable () -> Void] = []
        /// The loop will look at `tasks` before it next sleeps (a task from another thread has
        /// written to the eventfd, or one from the loop itself is being run).
        var woken = false
        var stopping = false
        var stopped = false
    }

    /// The most events taken from one `epoll_wait`.
    private static let eventsPerWait = 512
    /// Bytes read per `read` (what is read is copied to a buffer of its own size).
    static let readChunk = 65536

    let name: String
    let allocator = ByteBufferAllocator()
    private let epoll: CInt
    private let wakeFD: CInt
    private let shared = Mutex(Shared())
    private let thread = Atomic<UInt>(0)
    private let hasStopped = Atomic<Bool>(false)
    /// Runs what is submitted after the loop has stopped, one task after another.
    private let successor: any EventLoop = MultiThreadedEventLoopGroup.singleton.next()
    private let finished: Mutex<[EventLoopPromise<Void>]> = Mutex([])
    private let logger: Logger

    // Touched only on the loop's thread.
    private var timers = TimerHeap()
    private var timerSequence: UInt64 = 0
    private var connections: [SocketConnection?] = []
    private var listeners: [CInt: Listening] = [:]
    /// Where `read` puts bytes before they are copied to a buffer of their own size.
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: SocketLoop.readChunk, alignment: 16)

    private struct Listening {
        let accept: @Sendable (SocketConnection) -> Void
        var paused = false
    }

    /// Starts the loop's thread.
    init(name: String, logger: Logger) throws {
        let epoll = sb_epoll_create()
        guard epoll >= 0 else { throw IOError(errnoCode: errno, reason: "epoll_create1") }
        let wakeFD = sb_eventfd()
        guard wakeFD >= 0 else {
            Glibc.close(epoll)
            throw IOError(errnoCode: errno, reason: "eventfd")
        }
        guard sb_epoll_add(epoll, wakeFD, SB_EPOLLIN | SB_EPOLLET) == 0 else {
            Glibc.close(epoll)
            Glibc.close(wakeFD)
            throw IOError(errnoCode: errno, reason: "epoll_ctl")
        }
        self.name = name
        self.epoll = epoll
        self.wakeFD = wakeFD
        self.logger = logger
        let started = DispatchSemaphore(value: 0)
        let thread = Thread { [self] in
            self.thread.store(UInt(pthread_self()), ordering: .releasing)
            started.signal()
            run()
        }
        thread.name = name
        thread.start()
        started.wait()
    }

    // MARK: EventLoop

    var inEventLoop: Bool {
        UInt(pthread_self()) == thread.load(ordering: .relaxed) || (hasStopped.load(ordering: .acquiring) && successor.inEventLoop)
    }

    func execute(_ task: @escaping @Sendable () -> Void) {
        let wake = shared.withLock { shared -> Bool? in
            guard !shared.stopped else { return nil }
            shared.tasks.append(task)
            if shared.woken { return false }
            shared.woken = true
            return true
        }
        guard let wake else {
            successor.execute(task)
            return
        }
        // From the loop's own thread the loop looks at its tasks before it sleeps again.
        if wake, !inEventLoop { wakeUp() }
    }

    func scheduleTask<T>(deadline: NIODeadline, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        if hasStopped.load(ordering: .acquiring) { return successor.scheduleTask(deadline: deadline, task) }
        let promise: EventLoopPromise<T> = makePromise()
        let timer = Timer(deadline: deadline)
        // The timer runs on the loop, where the promise is completed (as NIO's own loops do).
        timer.run = { promise.assumeIsolatedUnsafeUnchecked().completeWith(Result { try task() }) }
        timer.fail = { promise.fail($0) }
        if inEventLoop { insert(timer) } else { execute { self.insert(timer) } }
        return Scheduled(promise: promise) { [self] in
            let cancel: @Sendable () -> Void = { timer.fail(with: .cancelled) }
            if inEventLoop { cancel() } else { execute(cancel) }
        }
    }

    func scheduleTask<T>(in delay: TimeAmount, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        scheduleTask(deadline: .now() + delay, task)
    }

    func preconditionInEventLoop(file: StaticString, line: UInt) {
        precondition(inEventLoop, "not on event loop \(name)", file: file, line: line)
    }

    func preconditionNotInEventLoop(file: StaticString, line: UInt) {
        precondition(!inEventLoop, "on event loop \(name)", file: file, line: line)
    }

    func shutdownGracefully(queue: DispatchQueue, _ callback: @escaping @Sendable ((any Error)?) -> Void) {
        stop().whenComplete { _ in queue.async { callback(nil) } }
    }

    /// Closes every connection, fails the timers still waiting, runs the tasks still queued, and
    /// ends the thread; the future (on one of NIO's loops) succeeds once it has.
    @discardableResult
    func stop() -> EventLoopFuture<Void> {
        let promise = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Void.self)
        let alreadyStopped = shared.withLock { shared -> Bool in
            if shared.stopped { return true }
            shared.stopping = true
            shared.woken = true
            return false
        }
        if alreadyStopped {
            promise.succeed(())
        } else {
            finished.withLock { $0.append(promise) }
            wakeUp()
        }
        return promise.futureResult
    }

    private func wakeUp() {
        var one: UInt64 = 1
        _ = Glibc.write(wakeFD, &one, 8)
    }

    // MARK: sockets

    /// Starts accepting on `socket` (a listening socket, non-blocking); `accept` gets each new
    /// connection, on the loop, before any of its bytes are read. On the loop.
    func listen(on socket: CInt, accept: @escaping @Sendable (SocketConnection) -> Void) {
        preconditionInEventLoop(file: #file, line: #line)
        listeners[socket] = Listening(accept: accept)
        if sb_epoll_add(epoll, socket, SB_EPOLLIN | SB_EPOLLEXCLUSIVE) != 0 {
            logger.error("gateway loop cannot wait on its listening socket", metadata: ["errno": "\(errno)"])
        }
    }

    /// Stops accepting on `socket`; on the loop.
    func stopListening(on socket: CInt) {
        preconditionInEventLoop(file: #file, line: #line)
        guard let listening = listeners.removeValue(forKey: socket) else { return }
        if !listening.paused { _ = sb_epoll_remove(epoll, socket) }
    }

    private func acceptQueued(on socket: CInt) {
        // A batch at most per wake-up: the socket is level-triggered, so the rest wakes us again,
        // and the other loops get their share.
        for _ in 0..<64 {
            let accepted = sb_accept_nonblocking(socket)
            if accepted < 0 {
                switch errno {
                case EAGAIN, EWOULDBLOCK: return
                case EINTR, ECONNABORTED, EPROTO: continue
                default:
                    // Out of descriptors or memory: the connection waits in the kernel's queue;
                    // this loop stops waiting on the socket for 10 ms rather than spin.
                    pauseListening(on: socket, errno: errno)
                    return
                }
            }
            // TCP_NODELAY comes from the listening socket (`Acceptor`).
            let connection = SocketConnection(socket: accepted, loop: self)
            guard sb_epoll_add(epoll, accepted, SB_EPOLLIN | SB_EPOLLOUT | SB_EPOLLRDHUP | SB_EPOLLET) == 0 else {
                Glibc.close(accepted)
                continue
            }
            let index = Int(accepted)
            if index >= connections.count {
                connections.append(contentsOf: repeatElement(nil, count: max(index + 1 - connections.count, connections.count)))
            }
            connections[index] = connection
            listeners[socket]?.accept(connection)
        }
    }

    private var lastResourceWarning = ContinuousClock.now - .seconds(60)

    private func pauseListening(on socket: CInt, errno error: CInt) {
        if ContinuousClock.now - lastResourceWarning > .seconds(10) {
            lastResourceWarning = .now
            logger.warning("gateway cannot accept connections", metadata: ["errno": "\(error)"])
        }
        guard listeners[socket] != nil else { return }
        listeners[socket]!.paused = true
        _ = sb_epoll_remove(epoll, socket)
        _ = scheduleTask(in: .milliseconds(10)) {
            guard self.listeners[socket]?.paused == true else { return }
            self.listeners[socket]!.paused = false
            _ = sb_epoll_add(self.epoll, socket, SB_EPOLLIN | SB_EPOLLEXCLUSIVE)
        }
    }

    /// The connection's socket is closed or handed on: the loop lets go of it. On the loop.
    func forget(_ connection: SocketConnection, deregister: Bool) {
        if deregister { _ = sb_epoll_remove(epoll, connection.socket) }
        let index = Int(connection.socket)
        if index < connections.count, connections[index] === connection { connections[index] = nil }
    }

    // MARK: the loop

    private func run() {
        var fds = [CInt](repeating: 0, count: Self.eventsPerWait)
        var events = [UInt32](repeating: 0, count: Self.eventsPerWait)
        while true {
            runTasks()
            // One look under the lock: whether to stop, and whether tasks came in meanwhile.
            let (stopping, pending) = shared.withLock { ($0.stopping, !$0.tasks.isEmpty) }
            if stopping { break }
            let timeout: CInt
            if pending {
                timeout = 0
            } else if let next = timers.first?.deadline {
                let nanoseconds = (next - .now()).nanoseconds
                timeout = nanoseconds <= 0 ? 0 : CInt(clamping: (nanoseconds + 999_999) / 1_000_000)
            } else {
                timeout = -1
            }
            let count = sb_epoll_wait(epoll, &fds, &events, CInt(Self.eventsPerWait), timeout)
            if count < 0, errno != EINTR {
                logger.error("gateway event loop stopped", metadata: ["loop": "\(name)", "errno": "\(errno)"])
                break
            }
            for index in 0..<max(Int(count), 0) {
                let fd = fds[index]
                if fd == wakeFD {
                    var value: UInt64 = 0
                    _ = Glibc.read(wakeFD, &value, 8)
                } else if listeners[fd] != nil {
                    acceptQueued(on: fd)
                } else if Int(fd) < connections.count, let connection = connections[Int(fd)] {
                    connection.handle(events: events[index])
                }
            }
            runTimers()
        }
        finish()
    }

    private func runTasks() {
        let tasks = shared.withLock { shared in
            shared.woken = false
            let tasks = shared.tasks
            shared.tasks.removeAll(keepingCapacity: true)
            return tasks
        }
        for task in tasks { task() }
    }

    private func runTimers() {
        let now = NIODeadline.now()
        while let first = timers.first, first.deadline <= now {
            timers.removeFirst().fire()
        }
    }

    private func insert(_ timer: Timer) {
        timerSequence &+= 1
        timer.sequence = timerSequence
        timers.insert(timer)
    }

    private func finish() {
        for connection in connections { connection?.close() }
        // What the closes queued (and what that queues in turn), then the timers' promises.
        for _ in 0..<16 {
            runTasks()
            if shared.withLock({ $0.tasks.isEmpty }) { break }
        }
        while !timers.isEmpty { timers.removeFirst().fail(with: .shutdown) }
        let left = shared.withLock { shared in
            shared.stopped = true
            defer { shared.tasks = [] }
            return shared.tasks
        }
        hasStopped.store(true, ordering: .releasing)
        for task in left { successor.execute(task) }
        for socket in listeners.keys { _ = sb_epoll_remove(epoll, socket) }
        listeners = [:]
        Glibc.close(epoll)
        Glibc.close(wakeFD)
        scratch.deallocate()
        for promise in finished.withLock({ $0 }) { promise.succeed(()) }
    }
}

/// A scheduled task of a `SocketLoop`; touched only on the loop once scheduled.
private final class Timer: @unchecked Sendable {
    let deadline: NIODeadline
    var sequence: UInt64 = 0
    var run: (() -> Void)?
    var fail: ((any Error) -> Void)?

    init(deadline: NIODeadline) {
        self.deadline = deadline
    }

    func fire() {
        let run = self.run
        self.run = nil
        fail = nil
        run?()
    }

    /// Fails the task's promise with `error` (`cancelled`, or `shutdown` when the loop stops)
    /// unless it has run.
    func fail(with error: EventLoopError) {
        guard run != nil else { return }
        run = nil
        let fail = self.fail
        self.fail = nil
        fail?(error)
    }

    func precedes(_ other: Timer) -> Bool {
        deadline < other.deadline || (deadline == other.deadline && sequence < other.sequence)
    }
}

/// A binary min-heap of timers by deadline, then by the order they were scheduled in.
private struct TimerHeap {
    private var items: [Timer] = []

    var first: Timer? { items.first }
    var isEmpty: Bool { items.isEmpty }

    mutating func insert(_ timer: Timer) {
        items.append(timer)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].precedes(items[parent]) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func removeFirst() -> Timer {
        let first = items[0]
        let last = items.removeLast()
        guard !items.isEmpty else { return first }
        items[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            guard left < items.count else { break }
            var smallest = left
            if left + 1 < items.count, items[left + 1].precedes(items[left]) { smallest = left + 1 }
            guard items[smallest].precedes(items[parent]) else { break }
            items.swapAt(smallest, parent)
            parent = smallest
        }
        return first
    }
}
