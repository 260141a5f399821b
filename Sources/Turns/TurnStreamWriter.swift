/// Writes a turn's events to its stream: non-final events, and the one final event that ends it.
import Foundation
import RedisClient

/// Appends a turn's events to `turn:{messageId}`: capped, expiring, the final event marked so
/// readers know nothing follows (and, when tracing is on, carrying the writer's `traceparent` as `tp`).
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
                args: [settings.maxLength, Self.milliseconds(settings.ttl), event.type, try event.encodedData(),
                       TurnTracing.traceparentForFinalEvent() ?? ""])
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
        local id
        if ARGV[5] ~= nil and ARGV[5] ~= '' then
          id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'type', ARGV[3], 'data', ARGV[4], 'final', '1', 'tp', ARGV[5])
        else
          id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'type', ARGV[3], 'data', ARGV[4], 'final', '1')
        end
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        return id
        """)

    static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return max(1, Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000))
    }
}

