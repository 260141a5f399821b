import Foundation
import Logging
import Observability
import RedisClient
import SwitchboardCore

/// Options of one enqueue.
public struct EnqueueOptions: Sendable {
    /// Run no earlier than this from now (kept in the queue's delayed set until due).
    public var delay: Duration?
    /// Enqueues with the same key on the same queue within `idempotencyTTL` produce one job; the
    /// later calls return the first job's id.
    public var idempotencyKey: String?
    public var idempotencyTTL: Duration
    /// Runs allowed before the job goes to `failed`; nil uses the worker's `maxRetries + 1`.
    public var maxAttempts: Int?

    public init(delay: Duration? = nil, idempotencyKey: String? = nil, idempotencyTTL: Duration = .seconds(86_400),
                maxAttempts: Int? = nil) {
        self.delay = delay
        self.idempotencyKey = idempotencyKey
        self.idempotencyTTL = idempotencyTTL
        self.maxAttempts = maxAttempts
    }
}

/// The seam producers (API handlers, pipeline steps) depend on.
public protocol JobProducer: Sendable {
    /// Enqueues `job` on `queue` and returns its id (for a duplicate idempotency key: the id of
    /// the job enqueued first).
    @discardableResult
    func enqueue<P: JobPayload>(_ job: P, on queue: QueueName, options: EnqueueOptions) async throws -> JobID
}

extension JobProducer {
    @discardableResult
    public func enqueue<P: JobPayload>(_ job: P, on queue: QueueName) async throws -> JobID {
        try await enqueue(job, on: queue, options: EnqueueOptions())
    }
}

/// Enqueues jobs into the Redis streams served by `WorkerService`.
public struct JobQueue: JobProducer {
    public let client: RedisClient
    let logger: Logger

    public init(client: RedisClient, logger: Logger = Logger(label: "switchboard.queue")) {
        self.client = client
        self.logger = logger
    }

    @discardableResult
    public func enqueue<P: JobPayload>(_ job: P, on queue: QueueName, options: EnqueueOptions) async throws -> JobID {
        try Self.checkWritable(queue)
        let payload = try job.encodedPayload()
        return try await JobTracing.enqueue(job: P.name, queue: queue) { traceparent in
            let envelope = JobEnvelope(
                id: .make(), name: P.name, version: P.version, payload: payload, attempts: 0,
                maxAttempts: max(0, options.maxAttempts ?? 0), enqueuedAtMicros: JobEnvelope.nowMicros(), traceparent: traceparent)
            return try await write(envelope, on: queue, options: options)
        }
    }

    private func write(_ envelope: JobEnvelope, on queue: QueueName, options: EnqueueOptions) async throws -> JobID {
        let delayMillis = options.delay.map { max(0, Int($0.inMilliseconds)) } ?? 0

        // The common case (no key, no delay) is a plain XADD; everything else is one script so the
        // idempotency key and the job are written together or not at all.
        if options.idempotencyKey == nil && delayMillis == 0 {
            _ = try await client.xadd(QueueKeys.stream(queue), fields: envelope.fields.map { ($0.0, $0.1 as any RESPArgument) })
            return envelope.id
        }
        var keys = [delayMillis > 0 ? QueueKeys.delayed(queue) : QueueKeys.stream(queue)]
        if let key = options.idempotencyKey {
            guard !key.isEmpty, key.utf8.count <= 256 else {
                throw QueueError(.invalidConfiguration, "idempotency key must be 1–256 bytes")
            }
            keys.append(QueueKeys.idempotency(queue, key))
        }
        let args: [any RESPArgument] = [
            envelope.id.rawValue, max(1, Int(options.idempotencyTTL.inMilliseconds)), delayMillis,
            delayMillis > 0 ? try envelope.delayedMember() : "",
        ] + envelope.flatArguments
        let reply = try await client.evalScript(QueueScripts.enqueue, keys: keys, args: args)
        guard let id = reply.array?.first?.string else {
            throw QueueError(.unexpectedReply, "enqueue script returned \(reply)")
        }
        if reply.array?.last?.int == 1 {
            logger.debug("duplicate enqueue", metadata: ["job_id": "\(id)", "queue": "\(queue)"])
        }
        return JobID(rawValue: id)
    }

    /// Enqueues many jobs at once, pipelined (no delay, no idempotency key). Returns their ids in order.
    @discardableResult
    public func enqueue<P: JobPayload>(contentsOf jobs: [P], on queue: QueueName, maxAttempts: Int? = nil) async throws -> [JobID] {
        try Self.checkWritable(queue)
        let stream = client.key(QueueKeys.stream(queue))
        let now = JobEnvelope.nowMicros()
        let traceparent = TraceContext.currentTraceparent()
        var ids: [JobID] = []
        ids.reserveCapacity(jobs.count)
        var commands: [RedisCommand] = []
        commands.reserveCapacity(jobs.count)
        for job in jobs {
            let envelope = JobEnvelope(
                id: .make(), name: P.name, version: P.version, payload: try job.encodedPayload(), attempts: 0,
                maxAttempts: max(0, maxAttempts ?? 0), enqueuedAtMicros: now, traceparent: traceparent)
            ids.append(envelope.id)
            commands.append(RedisCommand("XADD", arguments: [stream, "*"] + envelope.flatArguments))
        }
        for reply in try await client.pipeline(commands) {
            if case .error(let message) = reply { throw RedisError.server(message) }
        }
        return ids
    }

    /// Depth, pending, delayed and oldest age of a queue (what `/metrics` exports).
    public func stats(for queue: QueueName, group: String = WorkerConfiguration.defaultConsumerGroup) async throws -> QueueStats {
        try await QueueStats.read(queue: queue, group: group, client: client)
    }

    static func checkWritable(_ queue: QueueName) throws(QueueError) {
        if queue == .failed { throw QueueError(.invalidQueue, "jobs cannot be enqueued on 'failed'") }
    }
}

/// A snapshot of one queue in Redis.
public struct QueueStats: Sendable, Equatable {
    public var queue: QueueName
    /// Entries in the stream: waiting plus in progress (the autoscaling signal).
    public var depth: Int
    /// Delivered to a worker and not yet acknowledged.
    public var pending: Int
    /// Waiting in the delayed set (scheduled, or backing off before a retry).
    public var delayed: Int
    /// Age of the oldest entry in the stream, 0 when empty.
    public var oldestAge: Duration

    public var waiting: Int { max(0, depth - pending) }

    static func read(queue: QueueName, group: String, client: RedisClient) async throws -> QueueStats {
        let stream = client.key(QueueKeys.stream(queue))
        let replies = try await client.pipeline([
            RedisCommand("XLEN", stream),
            RedisCommand("XPENDING", stream, group),
            RedisCommand("XRANGE", stream, "-", "+", "COUNT", 1),
            RedisCommand("ZCARD", client.key(QueueKeys.delayed(queue))),
            RedisCommand("TIME"),
        ])
        let depth = Int(replies[0].int ?? 0)
        // NOGROUP (no worker has served the queue yet) means nothing is pending.
        let pending = Int(replies[1].array?.first?.int ?? 0)
        var oldest = Duration.zero
        if let entry = replies[2].array?.first?.array, let id = entry.first?.string,
           let millis = id.split(separator: "-").first.flatMap({ Int64($0) }),
           let time = replies[4].array, let seconds = time.first?.int, let micros = time.last?.int
        {
            let nowMillis = seconds * 1000 + micros / 1000
            oldest = .milliseconds(max(0, nowMillis - millis))
        }
        return QueueStats(queue: queue, depth: depth, pending: pending, delayed: Int(replies[3].int ?? 0), oldestAge: oldest)
    }
}
