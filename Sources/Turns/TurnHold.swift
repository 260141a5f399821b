/// The hold on a message whose turn another job queues: a channel's hand-off (a WhatsApp media
/// download) queues the turn once it has what the turn needs, and until then the message is
/// `queued` with no turn job. `QueuedTurnRecovery` would take that for a lost turn after a minute
/// and queue it without the file; a held message is left to its hand-off instead. The hold
/// expires (an hour by default), so a hand-off that itself got lost is recovered in the end.
import Foundation
import RedisClient

public struct TurnHold: Sendable {
    public let redis: RedisClient
    public let ttl: Duration

    public init(redis: RedisClient, ttl: Duration = .seconds(3_600)) {
        self.redis = redis
        self.ttl = ttl
    }

    /// Holds `messageID` from the sweep until `release` or the hold's expiry.
    public func hold(messageID: Int64) async throws {
        _ = try await redis.set(TurnKeys.hold(messageID), "1", expiration: .milliseconds(TurnStreamWriter.milliseconds(ttl)))
    }

    /// Ends the hold (the hand-off queued the turn or answered the message).
    public func release(messageID: Int64) async throws {
        _ = try await redis.del(TurnKeys.hold(messageID))
    }

    /// The ids among `messageIDs` that are held, in one round trip.
    public func held(among messageIDs: [Int64]) async throws -> Set<Int64> {
        guard !messageIDs.isEmpty else { return [] }
        let replies = try await redis.pipeline(messageIDs.map { RedisCommand("EXISTS", redis.key(TurnKeys.hold($0))) })
        return Set(zip(messageIDs, replies).compactMap { id, reply in reply.int == 1 ? id : nil })
    }
}
