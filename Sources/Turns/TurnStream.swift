/// The Redis stream a turn's events travel in: its key names, its size and lifetime settings, and
/// one stored entry as readers see it.
import Foundation
import RedisClient

/// Redis key names of a turn (before the client's key prefix). Documented in docs/api.md.
public enum TurnKeys {
    /// The stream of a turn's events.
    public static func stream(_ messageID: Int64) -> String { "turn:\(messageID)" }
    /// Set while a stop was requested for the turn.
    public static func cancel(_ messageID: Int64) -> String { "turn:\(messageID):cancel" }
    /// Set while a channel's hand-off, not the recovery sweep, is to queue the turn (`TurnHold`).
    public static func hold(_ messageID: Int64) -> String { "turn:\(messageID):held" }
}

/// How long and how large a turn stream may grow.
public struct TurnStreamSettings: Sendable, Equatable {
    /// Entries kept per turn (approximate trim, `MAXLEN ~`); a resume from an id older than the
    /// kept window starts at the oldest kept entry.
    public var maxLength: Int
    /// The stream expires this long after its last event.
    public var ttl: Duration
    /// How long a stop request stays visible to the worker.
    public var cancelTTL: Duration

    public init(maxLength: Int = 10_000, ttl: Duration = .seconds(3_600), cancelTTL: Duration = .seconds(3_600)) {
        self.maxLength = maxLength
        self.ttl = ttl
        self.cancelTTL = cancelTTL
    }
}

/// One event as stored in the stream: the entry id is the SSE `id:`.
public struct TurnStreamEntry: Sendable, Equatable {
    public var id: String
    public var type: String
    /// The event's JSON, as written.
    public var data: [UInt8]
    public var isFinal: Bool
    /// The W3C `traceparent` of the span that wrote the final event (tracing on only).
    public var traceparent: String?

    public init(id: String, type: String, data: [UInt8], isFinal: Bool, traceparent: String? = nil) {
        self.id = id
        self.type = type
        self.data = data
        self.isFinal = isFinal
        self.traceparent = traceparent
    }

    public var event: TurnEvent? { try? TurnEvent.decode(type: type, data: data) }

    public init(_ entry: StreamEntry) {
        id = entry.id
        type = entry.string("type") ?? "unknown"
        data = entry.fields["data"] ?? Array("{}".utf8)
        isFinal = entry.string("final") == "1"
        traceparent = entry.string("tp")
    }
}

