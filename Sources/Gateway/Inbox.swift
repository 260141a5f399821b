/// The queue of one connection's inbound messages and the task that runs them in order.
import NIOCore
import Synchronization

/// Commands waiting for one client, run in arrival order by a task that exists only while there
/// is work (an idle connection has no task). The task prefers the connection's event loop as its
/// executor, so a command that does not wait on anything (a connect's token check, a subscribe to
/// the in-memory engine) runs on the thread that read it, without a hop to the global pool and back.
final class Inbox: Sendable {
    private struct State {
        var executor: EventLoopTaskExecutor?
        var messages: [ByteBuffer] = []
        var head = 0
        var running = false
        var paused = false
        /// Resumes reading once a backlog that paused the connection is worked off.
        var onDrained: (@Sendable () -> Void)?
    }

    /// Messages queued before the connection stops reading.
    static let limit = 64

    private let client: Client
    private let state = Mutex(State())

    init(client: Client) {
        self.client = client
    }

    /// Runs the inbox's task on `eventLoop` (the connection's).
    func runOn(_ eventLoop: any EventLoop) {
        let executor = EventLoopTaskExecutor(eventLoop)
        state.withLock { $0.executor = executor }
    }

    func onDrained(_ action: (@Sendable () -> Void)?) {
        state.withLock { $0.onDrained = action }
    }

    /// True when reading should stop (the backlog is at its limit); marks the inbox paused.
    var isFull: Bool {
        state.withLock { state in
            let full = state.messages.count - state.head >= Self.limit
            if full { state.paused = true }
            return full
        }
    }

    func push(_ message: ByteBuffer) {
        let (start, executor) = state.withLock { state -> (Bool, EventLoopTaskExecutor?) in
            state.messages.append(message)
            guard !state.running else { return (false, nil) }
            state.running = true
            return (true, state.executor)
        }
        if start {
            Task(executorPreference: executor) { await self.drain() }
        }
    }

    private func next() -> (ByteBuffer?, resume: (@Sendable () -> Void)?) {
        state.withLock { state in
            if state.head < state.messages.count {
                let message = state.messages[state.head]
                state.head += 1
                return (message, nil)
            }
            state.messages.removeAll(keepingCapacity: false)
            state.head = 0
            state.running = false
            let resume = state.paused ? state.onDrained : nil
            state.paused = false
            return (nil, resume)
        }
    }

    private func drain() async {
        while true {
            let (message, resume) = next()
            guard let message else {
                resume?()
                return
            }
            if client.isClosed { continue }
            await client.handle(message)
        }
    }
}

/// A task executor that runs jobs on a NIO event loop (enqueued with `execute`, so a job enqueued
/// from the loop's own thread runs in the same loop tick's task queue without a wake-up).
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        eventLoop.execute { job.runSynchronously(on: executor) }
    }
}
