import RedisClient
import SwitchboardCore

/// The real `JobQueueDriver`: one Redis stream per queue read through the consumer group
/// `group` as consumer `consumer` (the worker id), a sorted set of delayed jobs per queue, and the
/// failed stream. Multi-key changes are the Lua scripts of `QueueScripts`; key names are
/// `QueueKeys`. Every method is one command, script or pipeline, i.e. one round trip (`prepare`:
/// one per queue; `claim` adds a group re-creation and a second read only after Redis lost the
/// group). Layout and scripts: docs/queues.md.
package struct RedisStreamsDriver: JobQueueDriver {
    package let client: RedisClient
    package let group: String
    package let consumer: String

    package init(client: RedisClient, group: String, consumer: String) {
        self.client = client
        self.group = group
        self.consumer = consumer
    }

    package func prepare(_ queues: [QueueName]) async throws {
        for queue in queues {
            // From "0": jobs enqueued before any worker ever ran are delivered too.
            try await client.xgroupCreate(QueueKeys.stream(queue), group: group, id: "0", mkstream: true)
        }
    }

    // MARK: claiming

    /// One `XREADGROUP GROUP <group> <consumer> COUNT <limit> [BLOCK <wait>] STREAMS … >`.
    /// A stream whose group is gone (Redis restarted without persistence) gets it back, and the
    /// read is sent once more.
    package func claim(from queues: [QueueName], limitPerQueue: Int, wait: Duration?) async throws -> [DeliveredJob] {
        let streams = queues.map { (key: QueueKeys.stream($0), id: ">") }
        let batches: [StreamBatch]
        do {
            batches = try await client.xreadgroup(
                group: group, consumer: consumer, streams: streams, count: limitPerQueue, block: wait)
        } catch let error as RedisError where error.serverErrorCode == "NOGROUP" {
            try await prepare(queues)
            batches = try await client.xreadgroup(
                group: group, consumer: consumer, streams: streams, count: limitPerQueue, block: wait)
        }
        var jobs: [DeliveredJob] = []
        for batch in batches {
            guard let queue = queues.first(where: { QueueKeys.stream($0) == batch.stream }) else { continue }
            jobs += batch.entries.prefix(limitPerQueue).map { Self.job($0, queue: queue) }
        }
        return jobs
    }

    /// Each stream's `last-generated-id` (`XINFO STREAM`, pipelined; "$" when a stream is missing).
    package func positions(of queues: [QueueName]) async throws -> QueuePositions {
        let replies = try await client.pipeline(
            queues.map { RedisCommand("XINFO", "STREAM", client.key(QueueKeys.stream($0))) })
        return QueuePositions(zip(queues, replies).map { queue, reply in
            var id = "$"
            if let fields = reply.array {
                var index = 0
                while index + 1 < fields.count {
                    if fields[index].string == "last-generated-id", let value = fields[index + 1].string { id = value }
                    index += 2
                }
            }
            return (queue, id)
        })
    }

    /// `XREAD COUNT 1 BLOCK <timeout> STREAMS … <positions>`: wakes on anything added after them.
    package func waitForArrival(after positions: QueuePositions, timeout: Duration) async throws -> QueueName? {
        let woken = try await client.xread(
            streams: positions.positions.map { (QueueKeys.stream($0.queue), $0.position) }, count: 1, block: timeout)
        return woken.first.flatMap { batch in positions.positions.first { QueueKeys.stream($0.queue) == batch.stream }?.queue }
    }

    // MARK: reclaiming

    /// `XAUTOCLAIM <stream> <group> <consumer> <idle> <cursor> COUNT <limit>`; entries deleted
    /// meanwhile are dropped from the PEL by Redis 7 and are not returned.
    package func reclaim(from queue: QueueName, idleFor idle: Duration, cursor: String?, limit: Int) async throws
        -> (next: String?, jobs: [DeliveredJob])
    {
        let claimed = try await client.xautoclaim(
            QueueKeys.stream(queue), group: group, consumer: consumer, minIdle: idle, start: cursor ?? "0-0", count: limit)
        return (claimed.next == "0-0" ? nil : claimed.next, claimed.entries.map { Self.job($0, queue: queue) })
    }

    /// One `XPENDING … <first> <last> <count> <consumer>` over the receipts' range.
    package func deliveryCounts(of receipts: [String], in queue: QueueName) async throws -> [String: Int] {
        guard let first = receipts.first, let last = receipts.last else { return [:] }
        let pending = try await client.xpending(
            QueueKeys.stream(queue), group: group, start: first, end: last, count: receipts.count * 4 + 16, consumer: consumer)
        var counts: [String: Int] = [:]
        for item in pending { counts[item.id] = item.deliveries }
        return counts
    }

    /// The `extend` script (XCLAIM JUSTID of the entries still owned).
    package func extend(_ receipts: [String], in queue: QueueName) async throws -> Set<String> {
        let reply = try await client.evalScript(
            QueueScripts.extend, keys: [QueueKeys.stream(queue)], args: [group, consumer] + receipts)
        return Set((reply.array ?? []).compactMap(\.string))
    }

    // MARK: outcomes

    /// The `ack` script (XACK + XDEL).
    package func finished(_ receipts: [String], in queue: QueueName) async throws {
        _ = try await client.evalScript(QueueScripts.ack, keys: [QueueKeys.stream(queue)], args: [group] + receipts)
    }

    /// The `retry` script: XACK, XDEL, ZADD to the delayed set at the server's time + `delay`.
    package func retry(_ receipt: String, in queue: QueueName, next: JobEnvelope, delay: Duration) async throws -> Bool {
        let member = try next.delayedMember()
        let reply = try await client.evalScript(
            QueueScripts.retry, keys: [QueueKeys.stream(queue), QueueKeys.delayed(queue)],
            args: [group, receipt, max(0, delay.inMilliseconds), member])
        return reply.int == 1
    }

    /// The `bury` script: XACK, XDEL, XADD to the failed stream with `queue` and `failed_at`.
    package func bury(_ receipt: String, in queue: QueueName, as dead: JobEnvelope) async throws -> Bool {
        try await buryFields(receipt, queue: queue, fields: dead.fields)
    }

    package func buryMalformed(_ job: DeliveredJob, reason: String) async throws {
        _ = try await buryFields(
            job.receipt, queue: job.queue, fields: job.fields.map { ($0.name, $0.value) } + [(JobEnvelope.Field.lastError, Array(reason.utf8))])
    }

    private func buryFields(_ receipt: String, queue: QueueName, fields: [(String, [UInt8])]) async throws -> Bool {
        let all = fields + [
            (JobEnvelope.Field.queue, Array(queue.rawValue.utf8)),
            (JobEnvelope.Field.failedAt, Array(String(JobEnvelope.nowMicros()).utf8)),
        ]
        let args: [any RESPArgument] = [group, receipt] + all.flatMap { [$0.0 as any RESPArgument, $0.1 as any RESPArgument] }
        let reply = try await client.evalScript(QueueScripts.bury, keys: [QueueKeys.stream(queue), QueueKeys.failed], args: args)
        return reply.int == 1
    }

    // MARK: housekeeping

    /// The `promote` script (due members of the delayed set → XADD).
    package func promoteDue(in queue: QueueName, limit: Int) async throws -> (moved: Int, nextDue: Duration?) {
        let reply = try await client.evalScript(
            QueueScripts.promote, keys: [QueueKeys.delayed(queue), QueueKeys.stream(queue)], args: [limit])
        let parts = reply.array ?? []
        let moved = Int(parts.first?.int ?? 0)
        let nextDue = parts.count > 1 ? (parts[1].int ?? -1) : -1
        return (moved, nextDue >= 0 ? .milliseconds(nextDue) : nil)
    }

    /// The `pruneConsumers` script (XGROUP DELCONSUMER of idle consumers holding nothing; never this one).
    package func pruneIdleConsumers(of queue: QueueName, idleFor idle: Duration) async throws -> Int {
        let removed = try await client.evalScript(
            QueueScripts.pruneConsumers, keys: [QueueKeys.stream(queue)], args: [group, idle.inMilliseconds, consumer])
        return Int(removed.int ?? 0)
    }

    package func stats(of queue: QueueName) async throws -> QueueStats {
        try await QueueStats.read(queue: queue, group: group, client: client)
    }

    package func failedCount() async throws -> Int {
        try await client.xlen(QueueKeys.failed)
    }

    private static func job(_ entry: StreamEntry, queue: QueueName) -> DeliveredJob {
        DeliveredJob(queue: queue, receipt: entry.id, envelope: JobEnvelope(fields: entry.fields), fields: entry.orderedFields)
    }
}
