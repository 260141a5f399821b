import Logging
import NIOCore
import Synchronization

/// A message received on a subscribed channel or pattern.
public struct RedisPubSubMessage: Sendable {
    /// The channel WITHOUT the key prefix.
    public var channel: String
    /// The matching pattern (WITHOUT the prefix) for PSUBSCRIBE deliveries.
    public var pattern: String?
    /// A slice of the buffer the message was read into (not copied).
    public var payload: ByteBuffer

    /// The payload as UTF-8 text.
    public var text: String { String(buffer: payload) }

    public init(channel: String, pattern: String?, payload: ByteBuffer) {
        self.channel = channel
        self.pattern = pattern
        self.payload = payload
    }
}

/// A dedicated pub/sub connection. Resubscribes to everything after a reconnect.
///
/// A subscription is remembered from the moment `subscribe` is called: if Redis is unreachable
/// the call throws `.unavailable` after the connect timeout, but the channel stays registered
/// and is subscribed as soon as the connection comes back (retried with backoff until `close`).
/// Messages published while the connection is down are lost (Redis pub/sub is at-most-once):
/// `resubscriptions` tells a consumer each time the subscriptions were restored after a break,
/// so it can look for what it missed.
public final class RedisSubscriber: Sendable {
    private struct State {
        var channels: Set<String> = []
        var patterns: Set<String> = []
        var connection: RedisConnection?
        var waiters: [Int: CheckedContinuation<RedisConnection, any Error>] = [:]
        var nextWaiter = 0
        var supervisor: Task<Void, Never>?
        var closed = false
    }

    /// All messages of this subscriber; channel names WITHOUT the prefix. One consumer.
    public let messages: AsyncStream<RedisPubSubMessage>
    private let continuation: AsyncStream<RedisPubSubMessage>.Continuation
    /// One element each time every channel and pattern was subscribed again on a new connection
    /// after the previous one was lost (not for the first connection). Messages published between
    /// the loss and this element never arrived. One consumer.
    public let resubscriptions: AsyncStream<Void>
    private let resubscribed: AsyncStream<Void>.Continuation
    private let state = Mutex(State())
    private let connector: Connector
    private let keyPrefix: String
    private let logger: Logger

    init(connector: Connector, keyPrefix: String, logger: Logger) {
        self.connector = connector
        self.keyPrefix = keyPrefix
        self.logger = logger
        (messages, continuation) = AsyncStream.makeStream(of: RedisPubSubMessage.self)
        (resubscriptions, resubscribed) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public func subscribe(_ channels: [String]) async throws {
        let names = channels.map { keyPrefix + $0 }
        state.withLock { $0.channels.formUnion(names) }
        try await issue("SUBSCRIBE", names)
    }

    public func unsubscribe(_ channels: [String]) async throws {
        let names = channels.map { keyPrefix + $0 }
        state.withLock { $0.channels.subtract(names) }
        try await issueIfConnected("UNSUBSCRIBE", names)
    }

    public func psubscribe(_ patterns: [String]) async throws {
        let names = patterns.map { keyPrefix + $0 }
        state.withLock { $0.patterns.formUnion(names) }
        try await issue("PSUBSCRIBE", names)
    }

    public func punsubscribe(_ patterns: [String]) async throws {
        let names = patterns.map { keyPrefix + $0 }
        state.withLock { $0.patterns.subtract(names) }
        try await issueIfConnected("PUNSUBSCRIBE", names)
    }

    /// Ends the message stream and closes the connection.
    public func close() async {
        let (connection, supervisor, waiters) = state.withLock { state in
            state.closed = true
            defer { state.waiters = [:]; state.connection = nil }
            return (state.connection, state.supervisor, Array(state.waiters.values))
        }
        for waiter in waiters { waiter.resume(throwing: RedisError.unavailable("the subscriber is closed")) }
        supervisor?.cancel()
        await connection?.close()
        continuation.finish()
        resubscribed.finish()
    }

    // MARK: internals

    private func issue(_ verb: String, _ names: [String]) async throws {
        guard !names.isEmpty else { return }
        let connection = try await currentConnection()
        try await run(verb, names, on: connection)
    }

    private func issueIfConnected(_ verb: String, _ names: [String]) async throws {
        guard !names.isEmpty, let connection = state.withLock({ $0.connection }), connection.isActive else { return }
        try await run(verb, names, on: connection)
    }

    /// One command per name so each has exactly one confirmation to wait for.
    private func run(_ verb: String, _ names: [String], on connection: RedisConnection) async throws {
        do {
            let replies = try await connection.pipeline(names.map { RedisCommand(verb, $0) })
            if let message = replies.lazy.compactMap(\.errorMessage).first { throw RedisError.server(message) }
        } catch RedisError.connectionClosed {
            // Registered already: the supervisor subscribes again once it has reconnected.
        }
    }

    /// The live connection, starting the supervisor if needed and waiting up to the connect timeout.
    private func currentConnection() async throws -> RedisConnection {
        enum Next {
            case ready(RedisConnection)
            case wait(Int)
        }
        let next: Next = try state.withLock { state in
            if state.closed { throw RedisError.unavailable("the subscriber is closed") }
            if state.supervisor == nil {
                state.supervisor = Task { await self.supervise() }
            }
            if let connection = state.connection, connection.isActive { return .ready(connection) }
            state.nextWaiter += 1
            return .wait(state.nextWaiter)
        }
        switch next {
        case .ready(let connection):
            return connection
        case .wait(let id):
            let timeout = connector.configuration.connectTimeout
            let timer = Task {
                try? await Task.sleep(for: .nanoseconds(timeout.nanoseconds))
                let waiter = self.state.withLock { $0.waiters.removeValue(forKey: id) }
                waiter?.resume(
                    throwing: RedisError.unavailable(
                        "\(self.connector.configuration.endpoint) unreachable; the subscription stays registered"))
            }
            defer { timer.cancel() }
            return try await withCheckedThrowingContinuation { continuation in
                let ready: RedisConnection? = state.withLock { state in
                    if let connection = state.connection, connection.isActive { return connection }
                    state.waiters[id] = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }

    /// Keeps one connection alive: connects with backoff, resubscribes everything, waits for
    /// the connection to close, and starts over until the subscriber is closed.
    private func supervise() async {
        let continuation = self.continuation
        let prefix = Array(keyPrefix.utf8)
        let push: @Sendable (RedisPush) -> Void = { push in
            continuation.yield(Self.message(from: push, prefix: prefix))
        }
        var failures = 0
        var connectedBefore = false
        while !Task.isCancelled {
            let connection: RedisConnection
            do {
                connection = try await connector.connect(pushHandler: push)
            } catch {
                failures += 1
                if failures == 1 || failures % 30 == 0 {
                    logger.warning("redis subscriber cannot connect; retrying", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: Connector.backoff(attempt: failures + 4))
                continue
            }
            let (channels, patterns, waiters, closed) = state.withLock { state in
                if !state.closed { state.connection = connection }
                defer { state.waiters = [:] }
                return (state.channels, state.patterns, Array(state.waiters.values), state.closed)
            }
            if closed {
                await connection.close()
                return
            }
            let isReconnection = connectedBefore
            connectedBefore = true
            do {
                var commands = channels.map { RedisCommand("SUBSCRIBE", $0) }
                commands += patterns.map { RedisCommand("PSUBSCRIBE", $0) }
                if !commands.isEmpty { _ = try await connection.pipeline(commands) }
                if failures > 0 || isReconnection {
                    logger.info(
                        "redis subscriber reconnected",
                        metadata: ["channels": "\(channels.count)", "patterns": "\(patterns.count)"])
                }
                if isReconnection { resubscribed.yield() }
                failures = 0
            } catch {
                logger.warning("redis subscriber resubscribe failed", metadata: ["error": "\(error)"])
            }
            for waiter in waiters { waiter.resume(returning: connection) }
            try? await connection.channel.closeFuture.get()
            state.withLock { state in
                if state.connection === connection { state.connection = nil }
            }
            if !Task.isCancelled { logger.warning("redis subscriber connection lost; reconnecting") }
        }
    }

    private static func message(from push: RedisPush, prefix: [UInt8]) -> RedisPubSubMessage {
        func strip(_ name: ByteBuffer) -> String {
            var name = name
            if !prefix.isEmpty, name.readableBytesView.starts(with: prefix) { name.moveReaderIndex(forwardBy: prefix.count) }
            return String(buffer: name)
        }
        return RedisPubSubMessage(channel: strip(push.channel), pattern: push.pattern.map(strip), payload: push.payload)
    }
}
