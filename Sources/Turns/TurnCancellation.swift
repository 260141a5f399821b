/// The stop flag of a turn: set by the api, polled by the worker running it.
import Foundation
import RedisClient

/// The stop flag of a turn, shared through Redis so a stop sent to any api node reaches the worker.
public struct TurnCancellation: Sendable {
    public let redis: RedisClient
    public let settings: TurnStreamSettings

    public init(redis: RedisClient, settings: TurnStreamSettings = .init()) {
        self.redis = redis
        self.settings = settings
    }

    public func request(messageID: Int64) async throws {
        _ = try await redis.set(TurnKeys.cancel(messageID), "1", expiration: .milliseconds(TurnStreamWriter.milliseconds(settings.cancelTTL)))
    }

    public func isRequested(messageID: Int64) async throws -> Bool {
        try await redis.exists(TurnKeys.cancel(messageID))
    }
}
