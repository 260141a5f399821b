/// RedisClient owns Switchboard's connection to Redis: RESP encoding, reply parsing with
/// hiredis's reader inside a non-blocking SwiftNIO channel, a pool of multiplexed connections
/// for ordinary commands, exclusive leases for blocking reads, reconnection with backoff, the
/// key prefix, typed command helpers (strings, hashes, sorted sets, lists, streams, scripts)
/// and the pub/sub subscriber.
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A pool of connections to one Redis server. Thread-safe, Sendable, cheap to share.
/// Ordinary commands are multiplexed (pipelined) over `poolSize` connections; blocking commands
/// (XREAD/XREADGROUP with BLOCK, BLPOP...) run on a connection leased exclusively.
/// Reconnects with backoff when Redis restarts.
public final class RedisClient: Sendable {
    public let configuration: RedisConfiguration
    let logger: Logger
    let group: any EventLoopGroup
    private let connector: Connector
    private let slots: [ConnectionSlot]
    private let nextSlot = Atomic<Int>(0)
    private let leases: LeasePool

    public init(
        configuration: RedisConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger
    ) {
        self.configuration = configuration
        self.group = eventLoopGroup
        var logger = logger
        logger[metadataKey: "redis"] = "\(configuration.endpoint)/\(configuration.database)"
        self.logger = logger
        let connector = Connector(configuration: configuration, group: eventLoopGroup, logger: logger)
        self.connector = connector
        self.slots = (0..<max(1, configuration.poolSize)).map { _ in ConnectionSlot(connector: connector) }
        self.leases = LeasePool(connector: connector, maxIdle: configuration.maxIdleBlockingConnections)
    }

    /// Applies the configured key prefix: key("queue:ai") == "sb:queue:ai"
    public func key(_ name: String) -> String {
        configuration.keyPrefix + name
    }

    /// Removes the key prefix from a name Redis returned.
    public func unprefixed(_ name: String) -> String {
        let prefix = configuration.keyPrefix
        guard !prefix.isEmpty, name.hasPrefix(prefix) else { return name }
        return String(name.dropFirst(prefix.count))
    }

    // MARK: raw commands (no prefixing)

    /// Sends one command on a pooled connection. `-ERR` replies throw `RedisError.server`.
    public func send(_ command: RedisCommand) async throws -> RESPValue {
        try await pooledConnection().send(command)
    }

    /// Sends the commands in one write on one connection; replies come back in order and
    /// `-ERR` replies appear as `.error` in their place.
    public func pipeline(_ commands: [RedisCommand]) async throws -> [RESPValue] {
        if commands.isEmpty { return [] }
        return try await pooledConnection().pipeline(commands)
    }

    /// Runs `body` with a connection nobody else uses meanwhile (for blocking commands).
    /// The connection goes back to a small idle pool afterwards, or is closed if it broke.
    public func withBlockingConnection<T: Sendable>(_ body: (RedisConnection) async throws -> T) async throws -> T {
        let connection = try await leases.lease()
        do {
            let result = try await body(connection)
            await leases.release(connection)
            return result
        } catch {
            await leases.release(connection)
            throw error
        }
    }

    /// A health check that fails fast when Redis is down: at most one connection attempt, no
    /// backoff, and the PING itself bounded by the command (or connect) timeout.
    public func ping() async throws {
        let slot = slots[0]
        let timeout = configuration.commandTimeout ?? configuration.connectTimeout
        let connection: RedisConnection
        var borrowed = false
        if let ready = slot.readyConnection() {
            connection = ready
        } else {
            if slot.isClosed { throw RedisError.unavailable("the client is closed") }
            connection = try await connector.connectOnce()
            // Keep the fresh connection for ordinary commands unless the slot got one meanwhile.
            borrowed = !slot.adopt(connection)
        }
        defer { if borrowed { connection.channel.close(promise: nil) } }
        let reply = try await connection.send(RedisCommand("PING"), timeout: timeout)
        guard reply.string == "PONG" else { throw RedisError.protocolError("unexpected PING reply \(reply)") }
    }

    /// Closes every connection. Commands issued afterwards fail with `.unavailable`.
    public func close() async {
        for slot in slots { await slot.close() }
        await leases.close()
    }

    /// A new pub/sub connection; channel names are prefixed automatically.
    public func makeSubscriber() -> RedisSubscriber {
        RedisSubscriber(connector: connector, keyPrefix: configuration.keyPrefix, logger: logger)
    }

    private func pooledConnection() async throws -> RedisConnection {
        let index = slots.count == 1 ? 0 : nextSlot.wrappingAdd(1, ordering: .relaxed).oldValue % slots.count
        return try await slots[index].connection()
    }
}

/// One multiplexed connection of the pool, connected on first use and again after it dies.
/// Callers arriving while a connection attempt runs wait for that same attempt.
final class ConnectionSlot: Sendable {
    private enum State {
        case idle
        case connecting(Task<RedisConnection, any Error>)
        case ready(RedisConnection)
        case closed
    }

    private let state = Mutex<State>(.idle)
    private let connector: Connector

    init(connector: Connector) {
        self.connector = connector
    }

    func readyConnection() -> RedisConnection? {
        state.withLock { state in
            if case .ready(let connection) = state, connection.isActive { return connection }
            return nil
        }
    }

    var isClosed: Bool {
        state.withLock { if case .closed = $0 { true } else { false } }
    }

    /// Installs a connection made elsewhere if the slot has none; false if it was not taken.
    func adopt(_ connection: RedisConnection) -> Bool {
        state.withLock { state in
            switch state {
            case .idle:
                state = .ready(connection)
                return true
            case .ready(let old) where !old.isActive:
                state = .ready(connection)
                return true
            default:
                return false
            }
        }
    }

    func connection() async throws -> RedisConnection {
        enum Next {
            case use(RedisConnection)
            case wait(Task<RedisConnection, any Error>)
            case closed
        }
        let next: Next = state.withLock { state in
            switch state {
            case .ready(let connection) where connection.isActive:
                return .use(connection)
            case .connecting(let task):
                return .wait(task)
            case .closed:
                return .closed
            case .idle, .ready:
                let task = Task { [connector] in
                    do {
                        let connection = try await connector.connect()
                        let installed = self.state.withLock { state -> Bool in
                            guard case .connecting = state else { return false }
                            state = .ready(connection)
                            return true
                        }
                        if !installed {
                            await connection.close()
                            throw RedisError.unavailable("the client is closed")
                        }
                        return connection
                    } catch {
                        let closed = self.state.withLock { state -> Bool in
                            if case .connecting = state { state = .idle }
                            if case .closed = state { return true }
                            return false
                        }
                        throw closed ? RedisError.unavailable("the client is closed") : error
                    }
                }
                state = .connecting(task)
                return .wait(task)
            }
        }
        switch next {
        case .use(let connection): return connection
        case .wait(let task): return try await task.value
        case .closed: throw RedisError.unavailable("the client is closed")
        }
    }

    func close() async {
        let old = state.withLock { state -> State in
            let old = state
            state = .closed
            return old
        }
        switch old {
        case .ready(let connection): await connection.close()
        case .connecting(let task): task.cancel()
        case .idle, .closed: break
        }
    }
}

/// Connections leased exclusively for blocking commands; a few idle ones are kept for reuse and
/// the ones idle for long are closed.
final class LeasePool: Sendable {
    private struct State {
        var idle: [(connection: RedisConnection, since: NIODeadline)] = []
        var closed = false
    }

    static let maximumIdleTime: TimeAmount = .seconds(60)

    private let state = Mutex(State())
    private let connector: Connector
    private let maxIdle: Int

    init(connector: Connector, maxIdle: Int) {
        self.connector = connector
        self.maxIdle = maxIdle
    }

    func lease() async throws -> RedisConnection {
        let (reusable, stale): (RedisConnection?, [RedisConnection]) = try state.withLock { state in
            if state.closed { throw RedisError.unavailable("the client is closed") }
            var stale = Self.pruneStale(&state)
            while let entry = state.idle.popLast() {
                if entry.connection.isActive { return (entry.connection, stale) }
                stale.append(entry.connection)
            }
            return (nil, stale)
        }
        for connection in stale { await connection.close() }
        if let reusable { return reusable }
        return try await connector.connect(closeOnCancel: true)
    }

    /// Takes the connection back (most recently used first out, so the rest age out), or closes it
    /// if it broke or too many are idle.
    func release(_ connection: RedisConnection) async {
        let (keep, stale) = state.withLock { state -> (Bool, [RedisConnection]) in
            let stale = Self.pruneStale(&state)
            guard !state.closed, connection.isActive, state.idle.count < maxIdle else { return (false, stale) }
            state.idle.append((connection, .now()))
            return (true, stale)
        }
        for old in stale { await old.close() }
        if !keep { await connection.close() }
    }

    /// Removes the connections idle for longer than `maximumIdleTime`. `idle` is in release order,
    /// so they are a prefix: the lookup stops at the first recent one instead of visiting every
    /// idle connection on each lease (a node with hundreds of open SSE streams keeps as many).
    /// One that broke while idle is found when it is next taken.
    private static func pruneStale(_ state: inout State) -> [RedisConnection] {
        guard let oldest = state.idle.first else { return [] }
        let cutoff = NIODeadline.now() - maximumIdleTime
        guard oldest.since < cutoff else { return [] }
        let count = state.idle.firstIndex { $0.since >= cutoff } ?? state.idle.count
        defer { state.idle.removeFirst(count) }
        return state.idle.prefix(count).map(\.connection)
    }

    func close() async {
        let idle = state.withLock { state -> [RedisConnection] in
            state.closed = true
            defer { state.idle = [] }
            return state.idle.map(\.connection)
        }
        for connection in idle { await connection.close() }
    }
}
