import Foundation
import RedisClient

/// Redis key names of a turn (before the client's key prefix). Documented in docs/api.md.
public enum TurnKeys {
    /// The stream of a turn's events.
    public static func stream(_ messageID: Int64) -> String { "turn:\(messageID)" }
    /// Set while a stop was requested for the turn.
    public static func cancel(_ messageID: Int64) -> String { "turn:\(messageID):cancel" }
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

    public init(id: String, type: String, data: [UInt8], isFinal: Bool) {
        self.id = id
        self.type = type
        self.data = data
        self.isFinal = isFinal
    }

    public var event: TurnEvent? { try? TurnEvent.decode(type: type, data: data) }

    public init(_ entry: StreamEntry) {
        id = entry.id
        type = entry.string("type") ?? "unknown"
        data = entry.fields["data"] ?? Array("{}".utf8)
        isFinal = entry.string("final") == "1"
    }
}

/// Appends a turn's events to `turn:{messageId}`: capped, expiring, the final event marked so
/// readers know nothing follows.
public struct TurnStreamWriter: Sendable {
    public let redis: RedisClient
    public let messageID: Int64
    public let settings: TurnStreamSettings

    public init(redis: RedisClient, messageID: Int64, settings: TurnStreamSettings = .init()) {
        self.redis = redis
        self.messageID = messageID
        self.settings = settings
    }

    /// Appends `event`; returns its entry id. A final event (`complete`, `error`) is appended only
    /// when the stream has not ended yet, atomically, so a turn ends exactly once even when a stop
    /// request and a redelivered job race; then the answer is nil.
    @discardableResult
    public func append(_ event: TurnEvent) async throws -> String? {
        if event.isFinal {
            let reply = try await redis.evalScript(
                Self.appendFinalScript, keys: [TurnKeys.stream(messageID)],
                args: [settings.maxLength, Self.milliseconds(settings.ttl), event.type, try event.encodedData()])
            return reply.string
        }
        let replies = try await redis.pipeline(appendCommands([(event.type, try event.encodedData())]))
        if case .error(let message) = replies[0] { throw RedisError.server(message) }
        guard let id = replies[0].string else { throw RedisError.protocolError("XADD returned \(replies[0])") }
        return id
    }

    /// The pipeline that appends non-final entries (`type`, encoded `data`) in order: one XADD
    /// each, then one PEXPIRE that keeps the stream for `settings.ttl` after its latest entry.
    func appendCommands(_ entries: [(type: String, data: [UInt8])]) -> [RedisCommand] {
        let key = redis.key(TurnKeys.stream(messageID))
        return entries.map { entry in
            RedisClient.xaddCommand(key, fields: [("type", entry.type), ("data", entry.data)], maxLength: .approximately(settings.maxLength))
        } + [RedisCommand("PEXPIRE", key, Self.milliseconds(settings.ttl))]
    }

    static let appendFinalScript = RedisScript("""
        local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
        if #last > 0 then
          local fields = last[1][2]
          for i = 1, #fields, 2 do
            if fields[i] == 'final' and fields[i + 1] == '1' then return false end
          end
        end
        local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'type', ARGV[3], 'data', ARGV[4], 'final', '1')
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        return id
        """)

    static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return max(1, Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000))
    }
}

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
