import Logging
import NIOCore
import NIOSSL
import NIOPosix
import Synchronization

/// One TCP connection to Redis. Commands from any number of tasks are written in call order and
/// their replies matched in FIFO order, so concurrent callers pipeline over it for free.
public final class RedisConnection: Sendable {
    let channel: any Channel
    private let commandTimeout: TimeAmount?
    /// Leased connections (blocking reads) are closed when the waiting task is cancelled, so a
    /// shutdown does not wait for a BLOCK to run out.
    private let closeOnCancel: Bool
    /// Set before a timed-out command's caller resumes, so its next command does not pick this
    /// connection while the close is still on its way.
    private let abandoned = Atomic<Bool>(false)

    private init(channel: any Channel, commandTimeout: TimeAmount?, closeOnCancel: Bool) {
        self.channel = channel
        self.commandTimeout = commandTimeout
        self.closeOnCancel = closeOnCancel
    }

    /// Sends one command; an `-ERR` reply throws `RedisError.server`.
    public func send(_ command: RedisCommand) async throws -> RESPValue {
        try await send(command, timeout: commandTimeout)
    }

    /// Sends the commands in one write; `-ERR` replies come back as `.error` in their place.
    public func pipeline(_ commands: [RedisCommand]) async throws -> [RESPValue] {
        try await pipeline(commands, timeout: commandTimeout)
    }

    public var isActive: Bool { channel.isActive && !abandoned.load(ordering: .acquiring) }

    public func close() async {
        try? await channel.close()
    }

    func send(_ command: RedisCommand, timeout: TimeAmount?) async throws -> RESPValue {
        let reply = try await awaitReply(sendFuture(command, timeout: timeout))
        if case .error(let message) = reply { throw RedisError.server(message) }
        return reply
    }

    func pipeline(_ commands: [RedisCommand], timeout: TimeAmount?) async throws -> [RESPValue] {
        let loop = channel.eventLoop
        let promise = loop.makePromise(of: [RESPValue].self)
        var buffer = channel.allocator.buffer(capacity: commands.reduce(0) { $0 + $1.encodedSizeHint })
        for command in commands { command.encode(into: &buffer) }
        write(RedisRequest(buffer: buffer, sink: .batch(promise, count: commands.count)), timeout: timeout)
        return try await awaitReply(promise.futureResult)
    }

    func sendFuture(_ command: RedisCommand, timeout: TimeAmount?) -> EventLoopFuture<RESPValue> {
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        var buffer = channel.allocator.buffer(capacity: command.encodedSizeHint)
        command.encode(into: &buffer)
        write(RedisRequest(buffer: buffer, sink: .single(promise)), timeout: timeout)
        return promise.futureResult
    }

    private func write(_ request: RedisRequest, timeout: TimeAmount?) {
        let writePromise = channel.eventLoop.makePromise(of: Void.self)
        let sink = request.sink
        writePromise.futureResult.whenFailure { _ in sink.fail(RedisError.connectionClosed) }
        if let timeout {
            // A reply that is late holds up every reply behind it on this connection, so the
            // connection is dropped: the late command fails with .timeout, the others in flight
            // with .connectionClosed, and the next command reconnects.
            let task = channel.eventLoop.scheduleTask(in: timeout) { [self] in
                abandoned.store(true, ordering: .releasing)
                sink.fail(RedisError.timeout)
                channel.close(promise: nil)
            }
            switch sink {
            case .single(let p): p.futureResult.whenComplete { _ in task.cancel() }
            case .batch(let p, _): p.futureResult.whenComplete { _ in task.cancel() }
            }
        }
        channel.writeAndFlush(request, promise: writePromise)
    }

    private func awaitReply<T: Sendable>(_ future: EventLoopFuture<T>) async throws -> T {
        guard closeOnCancel else { return try await future.get() }
        let channel = self.channel
        do {
            return try await withTaskCancellationHandler {
                try await future.get()
            } onCancel: {
                channel.close(promise: nil)
            }
        } catch RedisError.connectionClosed where Task.isCancelled {
            throw CancellationError()
        }
    }

    // MARK: connecting

    /// One connection attempt plus the AUTH / SELECT handshake.
    static func connect(
        configuration: RedisConfiguration,
        eventLoop: any EventLoop,
        timeout: TimeAmount,
        closeOnCancel: Bool = false,
        pushHandler: (@Sendable (RedisPush) -> Void)? = nil
    ) async throws -> RedisConnection {
        // TLS settings that cannot work (an unreadable CA file, say) fail at once: retrying will not help.
        let tls: (context: NIOSSLContext, hostname: String?, handshake: TLSHandshake)?
        if let settings = configuration.tls {
            do {
                tls = (try settings.makeContext(), settings.hostname(for: configuration.host), TLSHandshake(eventLoop: eventLoop))
            } catch {
                throw HandshakeRejected(message: "TLS settings for \(configuration.endpoint) are unusable: \(error)")
            }
        } else {
            tls = nil
        }
        var bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls.context, serverHostname: tls.hostname))
                        try channel.pipeline.syncOperations.addHandler(TLSHandshakeWaiter(handshake: tls.handshake))
                    }
                    try channel.pipeline.syncOperations.addHandler(RESPHandler(pushHandler: pushHandler))
                }
            }
        let channel: any Channel
        do {
            if let socketPath = configuration.socketPath {
                // No TCP options: a Unix socket has no Nagle delay, and a vanished server closes it.
                channel = try await bootstrap.connect(unixDomainSocketPath: socketPath).get()
            } else {
                bootstrap = bootstrap
                    .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                    // Notices a peer that vanished without closing (idle subscriber and leased connections).
                    .channelOption(.socketOption(.so_keepalive), value: 1)
                channel = try await bootstrap.connect(host: configuration.host, port: configuration.port).get()
            }
        } catch {
            tls?.handshake.finish(.failure(error))
            throw RedisError.unavailable("cannot connect to \(configuration.endpoint): \(error)")
        }
        if let tls {
            do {
                try await tls.handshake.promise.futureResult.get()
            } catch {
                channel.close(promise: nil)
                // A certificate the client does not trust, or a server that speaks no TLS: not
                // something another attempt fixes.
                if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
                    throw HandshakeRejected(message: "TLS handshake with \(configuration.endpoint) failed: \(error)")
                }
                throw RedisError.unavailable("TLS handshake with \(configuration.endpoint) failed: \(error)")
            }
        }
        let connection = RedisConnection(
            channel: channel, commandTimeout: configuration.commandTimeout, closeOnCancel: closeOnCancel)

        var handshake: [RedisCommand] = []
        if let password = configuration.password {
            if let username = configuration.username {
                handshake.append(RedisCommand("AUTH", username, password))
            } else {
                handshake.append(RedisCommand("AUTH", password))
            }
        }
        if configuration.database != 0 {
            handshake.append(RedisCommand("SELECT", configuration.database))
        }
        if !handshake.isEmpty {
            do {
                let replies = try await connection.pipeline(handshake, timeout: timeout)
                for (command, reply) in zip(handshake, replies) {
                    if case .error(let message) = reply {
                        throw HandshakeRejected(message: "\(command.name) failed: \(message)")
                    }
                }
            } catch {
                await connection.close()
                throw error
            }
        }
        return connection
    }
}

/// The server refused AUTH or SELECT: retrying will not help.
struct HandshakeRejected: Error {
    var message: String
}

/// Connects with exponential backoff (capped, with jitter) until a deadline.
struct Connector: Sendable {
    let configuration: RedisConfiguration
    let group: any EventLoopGroup
    let logger: Logger

    static let firstDelay: Duration = .milliseconds(50)
    static let maximumDelay: Duration = .seconds(2)

    func connect(
        deadline: NIODeadline? = nil, closeOnCancel: Bool = false, pushHandler: (@Sendable (RedisPush) -> Void)? = nil
    ) async throws -> RedisConnection {
        let deadline = deadline ?? .now() + configuration.connectTimeout
        var attempt = 0
        while true {
            let remaining = deadline - .now()
            do {
                return try await RedisConnection.connect(
                    configuration: configuration, eventLoop: group.next(),
                    timeout: max(.milliseconds(10), min(remaining, configuration.connectTimeout)),
                    closeOnCancel: closeOnCancel, pushHandler: pushHandler)
            } catch let rejected as HandshakeRejected {
                throw RedisError.unavailable(rejected.message)
            } catch {
                attempt += 1
                let delay = Self.backoff(attempt: attempt)
                let nanos = delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000
                if .now() + .nanoseconds(nanos) >= deadline {
                    logger.warning(
                        "redis connect failed", metadata: ["attempts": "\(attempt)", "error": "\(Self.reason(error))"])
                    throw RedisError.unavailable(
                        "\(configuration.endpoint) unreachable after \(attempt) attempt(s): \(Self.reason(error))")
                }
                try await Task.sleep(for: delay)
            }
        }
    }

    /// A single attempt with the full connect timeout and no retry (for health checks).
    func connectOnce() async throws -> RedisConnection {
        do {
            return try await RedisConnection.connect(
                configuration: configuration, eventLoop: group.next(), timeout: configuration.connectTimeout)
        } catch let rejected as HandshakeRejected {
            throw RedisError.unavailable(rejected.message)
        }
    }

    /// 50 ms, 100 ms, 200 ms ... capped at 2 s, each with up to 50 % random jitter taken off.
    static func backoff(attempt: Int) -> Duration {
        let exponent = min(attempt - 1, 10)
        let capped = min(firstDelay * (1 << exponent), maximumDelay)
        return capped * Double.random(in: 0.5...1.0)
    }

    static func reason(_ error: any Error) -> String {
        if case RedisError.unavailable(let reason) = error { return reason }
        return "\(error)"
    }
}
