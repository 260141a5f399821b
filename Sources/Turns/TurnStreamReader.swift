/// Reads a turn's stream back (the api's SSE relay, tools and tests).
import Foundation
import RedisClient

/// Reads a turn's events for the SSE relay, from any api node.
public struct TurnStreamReader: Sendable {
    public let redis: RedisClient

    public init(redis: RedisClient) { self.redis = redis }

    /// Entries after `afterID` ("0-0" for all); waits up to `block` for the first one to arrive
    /// and answers an empty array when none did.
    public func read(messageID: Int64, after afterID: String, block: Duration?, count: Int = 256) async throws -> [TurnStreamEntry] {
        let batches = try await redis.xread(streams: [(TurnKeys.stream(messageID), afterID)], count: count, block: block)
        return batches.flatMap { $0.entries.map(TurnStreamEntry.init) }
    }

    /// The newest entry, if the stream exists.
    public func last(messageID: Int64) async throws -> TurnStreamEntry? {
        try await redis.xrevrange(TurnKeys.stream(messageID), count: 1).first.map(TurnStreamEntry.init)
    }

    /// Every entry (for tests and tools).
    public func all(messageID: Int64) async throws -> [TurnStreamEntry] {
        try await redis.xrange(TurnKeys.stream(messageID)).map(TurnStreamEntry.init)
    }

    /// True when `id` is a stream entry id (`<ms>-<seq>`), the only thing a resume may start after.
    public static func isValidEntryID(_ id: String) -> Bool {
        let parts = id.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return false }
        return parts.allSatisfy { !$0.isEmpty && $0.count <= 20 && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) && UInt64($0) != nil }
    }
}

