import Foundation
import Logging
import Queue
import RedisClient
import Storage
import Turns

/// Finds accepted messages whose turn job was never queued and queues it.
///
/// The api stores a message, then queues its turn, then answers 202. A node that dies between the
/// first two steps leaves a `queued` message no worker will ever see; the client got no 202, but
/// a retry with the same Idempotency-Key replays the stored message rather than queuing anew.
/// Turn jobs are queued under the idempotency key `turn:{messageId}`, so queuing a turn that is
/// in fact waiting in the queue changes nothing, and a sweep may safely treat every message that
/// has been `queued` for longer than `minimumAge` as possibly lost, except one under a `TurnHold`
/// (its channel's hand-off queues the turn).
public struct QueuedTurnRecovery: Sendable {
    public struct Settings: Sendable {
        /// Messages queued more recently than this are left alone (their job is on its way).
        public var minimumAge: Duration
        /// Messages looked at per sweep.
        public var batchSize: Int

        public init(minimumAge: Duration = .seconds(60), batchSize: Int = 500) {
            self.minimumAge = minimumAge
            self.batchSize = batchSize
        }
    }

    let messages: any MessageStore
    let jobs: any JobProducer
    let redis: RedisClient
    let settings: Settings

    public init(messages: any MessageStore, jobs: any JobProducer, redis: RedisClient, settings: Settings = .init()) {
        self.messages = messages
        self.jobs = jobs
        self.redis = redis
        self.settings = settings
    }

    /// One sweep; returns how many turns it queued again (0 when another node holds the sweep lock).
    /// The lock lasts `lockFor`, so with many workers one of them sweeps per period.
    @discardableResult
    public func sweep(lockFor: Duration, logger: Logger) async throws -> Int {
        let milliseconds = max(1, Int(lockFor / .milliseconds(1)))
        let locked = try await redis.send(RedisCommand("SET", redis.key("turns:sweep-lock"), "1", "NX", "PX", milliseconds))
        guard !locked.isNull else { return 0 }
        let cutoff = Date().addingTimeInterval(-(settings.minimumAge / .seconds(1)))
        let queued = try await messages.queuedMessageIDs(createdBefore: cutoff, limit: settings.batchSize)
        // A held message waits for its channel's hand-off (a media download), which queues the turn.
        let held = try await TurnHold(redis: redis).held(among: queued)
        let ids = queued.filter { !held.contains($0) }
        for id in ids {
            try await Turns.enqueue(messageID: id, on: jobs)
        }
        if !ids.isEmpty {
            logger.notice("queued turns of messages left queued", metadata: ["count": "\(ids.count)", "first_id": "\(ids[0])"])
        }
        return ids.count
    }
}
