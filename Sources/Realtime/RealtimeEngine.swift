/// The realtime engine's Redis format, in one place for the gateway (which reads and writes it)
/// and for the api and workers (which publish into it without linking the gateway): the key of
/// each gateway channel's pub/sub channel, history stream and meta hash, the publish scripts, and
/// the encoding of a publication on the wire between nodes.
import Foundation
import RedisClient

/// Keys of the engine (under the Redis client's own prefix and the engine prefix, default `gw:`):
/// - `gw:ch:{channel}` pub/sub channel: `p\n{offset}\n{epoch}\n{publication}`, `j\n{info}`, `l\n{info}`
/// - `gw:control` pub/sub channel: server API commands for every node
/// - `gw:history:{channel}` stream, MAXLEN history_size, expires after history_ttl
/// - `gw:meta:{channel}` hash `o` (offset) and `e` (epoch), expires after history_meta_ttl
public struct RealtimeEngineKeys: Sendable, Hashable {
    public static let defaultPrefix = "gw:"
    public let prefix: String

    public init(prefix: String? = nil) { self.prefix = prefix ?? Self.defaultPrefix }

    private static let pubsubSegment = "ch:"
    private static let historySegment = "history:"
    private static let metaSegment = "meta:"

    public var controlChannel: String { prefix + "control" }
    public var pubsubPrefix: String { prefix + Self.pubsubSegment }
    public func pubsubChannel(_ channel: String) -> String { prefix + Self.pubsubSegment + channel }
    public func streamKey(_ channel: String) -> String { prefix + Self.historySegment + channel }
    public func metaKey(_ channel: String) -> String { prefix + Self.metaSegment + channel }

    /// `pubsubChannel`, `streamKey` and `metaKey` as command arguments with the Redis client's
    /// key prefix in front, written into the command without joining strings (a publish's keys).
    public func pubsubChannelArgument(_ channel: String, clientPrefix: String) -> RESPConcatenation {
        RESPConcatenation(clientPrefix, prefix, Self.pubsubSegment, channel)
    }
    public func streamKeyArgument(_ channel: String, clientPrefix: String) -> RESPConcatenation {
        RESPConcatenation(clientPrefix, prefix, Self.historySegment, channel)
    }
    public func metaKeyArgument(_ channel: String, clientPrefix: String) -> RESPConcatenation {
        RESPConcatenation(clientPrefix, prefix, Self.metaSegment, channel)
    }
    public func idempotencyKey(_ channel: String, _ key: String) -> String {
        prefix + "idempotency:\(channel.utf8.count):" + channel + ":" + key
    }
}

/// The engine's server-side scripts. Publishing appends, trims, sets expiries and publishes in
/// one script, so history order and live order agree whoever publishes.
public enum RealtimeEngineScripts {
    /// Appends ARGV[1] to the channel's history with the next offset (Lua that sets `offset` and
    /// `epoch`; shared by both publish scripts so they cannot drift apart).
    static let appendToHistory = """
          offset = redis.call('hincrby', KEYS[2], 'o', 1)
          epoch = redis.call('hget', KEYS[2], 'e')
          if not epoch then
            epoch = ARGV[6]
            redis.call('hset', KEYS[2], 'e', epoch)
          end
          if offset == 1 then redis.call('del', KEYS[1]) end
          redis.call('expire', KEYS[2], ARGV[4])
          redis.call('xadd', KEYS[1], 'MAXLEN', ARGV[2], offset .. '-0', 'd', ARGV[1])
          redis.call('expire', KEYS[1], ARGV[3])
        """
    static let publishToNodes = """
        redis.call('publish', ARGV[5], 'p\\n' .. offset .. '\\n' .. epoch .. '\\n' .. ARGV[1])
        """

    /// KEYS: history stream, meta hash. ARGV: publication JSON, history size, history ttl, meta
    /// ttl, pub/sub channel, epoch for a new history. Returns {offset, epoch}.
    public static let publish = RedisScript(
        """
        local offset, epoch
        \(appendToHistory)
        \(publishToNodes)
        return {offset, epoch}
        """)

    /// Publishes once per idempotency key: KEYS as `publish` plus the key holding the first
    /// result (`offset:epoch`); ARGV as `publish` plus the result ttl and whether history is kept.
    public static let idempotentPublish = RedisScript(
        """
        local cached = redis.call('get', KEYS[3])
        if cached then
          local separator = string.find(cached, ':', 1, true)
          return {tonumber(string.sub(cached, 1, separator - 1)), string.sub(cached, separator + 1)}
        end
        local offset = 0
        local epoch = ''
        if ARGV[8] == '1' then
        \(appendToHistory)
        end
        \(publishToNodes)
        redis.call('set', KEYS[3], offset .. ':' .. epoch, 'EX', ARGV[7])
        return {offset, epoch}
        """)

    /// A new epoch for a stream that has none.
    public static func newEpoch() -> String {
        String(UInt32.random(in: .min ... .max), radix: 36)
    }

    /// The pub/sub payload of a publication kept in no history (offset 0, no epoch).
    public static func unpositionedPayload(_ publicationJSON: String) -> String { "p\n0\n\n" + publicationJSON }
}
