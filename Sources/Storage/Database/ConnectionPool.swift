import Logging
import NIOPosix
import Synchronization

/// A bounded set of connections: idle ones are reused (last in, first out), new ones are opened up to
/// `poolSize`, and callers beyond that wait in a FIFO queue for at most `acquireTimeout`.
///
/// Opening, pinging and closing run on the database thread pool like every other Connector/C call.
final class ConnectionPool: Sendable {
    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<MariaDBConnection, any Error>
    }

    private struct State {
        var idle: [MariaDBConnection] = []
        /// Connections open or being opened, idle or leased.
        var open = 0
        var waiters: [Waiter] = []
        var nextWaiterID: UInt64 = 0
        var closed = false
    }

    private let state = Mutex(State())
    private let configuration: DatabaseConfiguration
    private let threadPool: NIOThreadPool
    private let logger: Logger

    init(configuration: DatabaseConfiguration, threadPool: NIOThreadPool, logger: Logger) {
        self.configuration = configuration
        self.threadPool = threadPool
        self.logger = logger
    }

    /// Connections currently open (idle or in use).
    var openConnections: Int { state.withLock { $0.open } }

    func acquire() async throws -> MariaDBConnection {
        while true {
            let connection = try await leaseOrWait()
            // A connection idle for a while may have been closed by the server (wait_timeout, KILL, restart).
            if connection.lastUsed.duration(to: .now) < configuration.healthCheckAfterIdle { return connection }
            let alive = (try? await threadPool.runIfActive {
                MariaDBLibrary.prepareCurrentThread()
                return connection.ping()
            }) ?? false
            if alive { return connection }
            logger.info("discarding a database connection that failed its health check",
                        metadata: ["connection_id": "\(connection.serverConnectionID)"])
            discard(connection)
        }
    }

    private enum Lease {
        case connection(MariaDBConnection)
        case open
        case wait(UInt64)
    }

    private func leaseOrWait() async throws -> MariaDBConnection {
        let lease: Lease = try state.withLock { state in
            if state.closed { throw DatabaseError(code: .closed, message: "the database has been shut down") }
            if let connection = state.idle.popLast() { return .connection(connection) }
            if state.open < configuration.poolSize {
                state.open += 1
                return .open
            }
            state.nextWaiterID += 1
            return .wait(state.nextWaiterID)
        }
        switch lease {
        case .connection(let connection):
            return connection
        case .open:
            return try await openConnection()
        case .wait(let id):
            return try await wait(id: id)
        }
    }

    /// Opens a connection for a slot already counted in `open`; gives the slot back on failure.
    private func openConnection() async throws -> MariaDBConnection {
        do {
            let configuration = self.configuration
            return try await threadPool.runIfActive { try MariaDBConnection.connect(configuration) }
        } catch {
            slotFreed()
            throw error
        }
    }

    private func wait(id: UInt64) async throws -> MariaDBConnection {
        let timeout = configuration.acquireTimeout
        let timer = Task { [weak self] in
            try await Task.sleep(for: timeout)
            self?.removeWaiter(
                id: id,
                error: DatabaseError(
                    code: .poolTimeout,
                    message: "no database connection became free within \(timeout) (pool size \(self?.configuration.poolSize ?? 0))"))
        }
        defer { timer.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let closed = state.withLock { state in
                    if state.closed { return true }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    return false
                }
                if closed { continuation.resume(throwing: DatabaseError(code: .closed, message: "the database has been shut down")) }
            }
        } onCancel: {
            removeWaiter(id: id, error: CancellationError())
        }
    }

    private func removeWaiter(id: UInt64, error: any Error) {
        let waiter = state.withLock { state -> Waiter? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        waiter?.continuation.resume(throwing: error)
    }

    /// Returns a healthy connection; a broken one is discarded instead.
    func release(_ connection: MariaDBConnection) {
        if connection.isBroken {
            discard(connection)
            return
        }
        enum Next { case handedOver(Waiter), kept, close }
        let next = state.withLock { state -> Next in
            if state.closed {
                state.open -= 1
                return .close
            }
            if !state.waiters.isEmpty { return .handedOver(state.waiters.removeFirst()) }
            state.idle.append(connection)
            return .kept
        }
        switch next {
        case .handedOver(let waiter): waiter.continuation.resume(returning: connection)
        case .kept: break
        case .close: close(connection)
        }
    }

    /// Closes a connection that must not be reused and frees its slot (a waiter gets a fresh connection).
    func discard(_ connection: MariaDBConnection) {
        close(connection)
        slotFreed()
    }

    /// A slot came free: open a replacement for the first waiter, if any.
    private func slotFreed() {
        let waiter = state.withLock { state -> Waiter? in
            if !state.closed, !state.waiters.isEmpty {
                return state.waiters.removeFirst()  // keeps the slot: `open` is unchanged
            }
            state.open -= 1
            return nil
        }
        guard let waiter else { return }
        Task {
            do {
                waiter.continuation.resume(returning: try await openConnection())
            } catch {
                waiter.continuation.resume(throwing: error)
            }
        }
    }

    private func close(_ connection: MariaDBConnection) {
        threadPool.submit { _ in
            MariaDBLibrary.prepareCurrentThread()
            connection.close()
        }
    }

    /// Fails every waiter and closes idle connections; leased ones close when released.
    func shutdown() async {
        let (idle, waiters) = state.withLock { state in
            state.closed = true
            let idle = state.idle
            state.open -= idle.count
            state.idle = []
            let waiters = state.waiters
            state.waiters = []
            return (idle, waiters)
        }
        for waiter in waiters {
            waiter.continuation.resume(throwing: DatabaseError(code: .closed, message: "the database has been shut down"))
        }
        for connection in idle {
            _ = try? await threadPool.runIfActive {
                MariaDBLibrary.prepareCurrentThread()
                connection.close()
            }
        }
    }
}
