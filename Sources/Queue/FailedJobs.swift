import Foundation
import RedisClient

/// A job that used up its attempts, as stored in the failed stream.
public struct FailedJob: Sendable, Equatable {
    /// The entry id in the failed stream (also accepted by `FailedJobs.retry`).
    public var entryID: String
    public var jobID: JobID
    public var queue: QueueName
    public var name: String
    public var version: Int
    /// The payload as stored (JSON text).
    public var payload: [UInt8]
    /// Runs used, including deliveries to workers that died.
    public var attempts: Int
    public var error: String
    public var firstEnqueuedAt: Date
    public var failedAt: Date
}

/// The dead-letter stream: list, retry, purge. Backs `switchboard jobs failed ...`.
public struct FailedJobs: Sendable {
    public let client: RedisClient

    public init(client: RedisClient) {
        self.client = client
    }

    /// Jobs in the failed stream, newest first.
    public func list(limit: Int = 100) async throws -> [FailedJob] {
        try await client.xrevrange(QueueKeys.failed, count: max(1, limit)).compactMap(Self.failedJob)
    }

    /// How many jobs are in the failed stream.
    public func count() async throws -> Int {
        try await client.xlen(QueueKeys.failed)
    }

    /// Puts one failed job back on its queue with fresh attempts. `id` is a job id or a failed
    /// stream entry id. Returns false when no such failed job exists.
    @discardableResult
    public func retry(_ id: String) async throws -> Bool {
        guard let entry = try await find(id) else { return false }
        return try await resurrect(entry)
    }

    /// Puts every failed job back on its queue. Returns how many were requeued.
    @discardableResult
    public func retryAll() async throws -> Int {
        var requeued = 0
        var start = "-"
        while true {
            let entries = try await client.xrange(QueueKeys.failed, start: start, end: "+", count: 200)
            guard let last = entries.last else { return requeued }
            for entry in entries where try await resurrect(entry) { requeued += 1 }
            start = "(" + last.id
        }
    }

    /// Deletes every failed job. Returns how many there were.
    @discardableResult
    public func purge() async throws -> Int {
        Int(try await client.evalScript(QueueScripts.purge, keys: [QueueKeys.failed], args: []).int ?? 0)
    }

    private func find(_ id: String) async throws -> StreamEntry? {
        if Self.isEntryID(id) {
            return try await client.xrange(QueueKeys.failed, start: id, end: id, count: 1).first
        }
        var start = "-"
        while true {
            let entries = try await client.xrange(QueueKeys.failed, start: start, end: "+", count: 500)
            guard let last = entries.last else { return nil }
            if let match = entries.first(where: { $0.string(JobEnvelope.Field.id) == id }) { return match }
            start = "(" + last.id
        }
    }

    private func resurrect(_ entry: StreamEntry) async throws -> Bool {
        guard let name = entry.string(JobEnvelope.Field.queue), let queue = QueueName(rawValue: name), queue != .failed else {
            return false
        }
        let reply = try await client.evalScript(
            QueueScripts.resurrect, keys: [QueueKeys.failed, QueueKeys.stream(queue)], args: [entry.id, queue.rawValue])
        return !reply.isNull
    }

    static func isEntryID(_ id: String) -> Bool {
        let parts = id.split(separator: "-", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) }
    }

    static func failedJob(_ entry: StreamEntry) -> FailedJob? {
        guard let envelope = JobEnvelope(fields: entry.fields),
            let queue = entry.string(JobEnvelope.Field.queue).flatMap(QueueName.init(rawValue:))
        else { return nil }
        let failedMicros = entry.string(JobEnvelope.Field.failedAt).flatMap { Int64($0) } ?? 0
        return FailedJob(
            entryID: entry.id, jobID: envelope.id, queue: queue, name: envelope.name, version: envelope.version,
            payload: envelope.payload, attempts: envelope.attempts, error: envelope.lastError ?? "",
            firstEnqueuedAt: envelope.enqueuedAt, failedAt: Date(timeIntervalSince1970: Double(failedMicros) / 1_000_000))
    }
}
