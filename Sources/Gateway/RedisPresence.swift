/// Presence in Redis (after centrifuge's presence_redis.go), shared by every node.
import Foundation
import Logging
import RedisClient
import SwitchboardCore
import Synchronization

/// Presence across nodes: a hash of client → info and a sorted set of client → expiry per channel.
///
/// Keys: `gw:presence:{channel}` (hash) and `gw:presence-expire:{channel}` (zset), both expiring
/// after presence_ttl unless a member refreshes them.
final class RedisPresenceManager: PresenceManager {
    private let redis: RedisClient
    private let prefix: String

    init(redis: RedisClient, prefix: String) {
        self.redis = redis
        self.prefix = prefix
    }

    private func hashKey(_ channel: String) -> String { prefix + "presence:" + channel }
    private func zsetKey(_ channel: String) -> String { prefix + "presence-expire:" + channel }

    static let addScript = RedisScript(
        """
        redis.call('zadd', KEYS[2], ARGV[3], ARGV[1])
        redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
        redis.call('expire', KEYS[1], ARGV[4])
        redis.call('expire', KEYS[2], ARGV[4])
        return 1
        """)

    static let getScript = RedisScript(
        """
        local expired = redis.call('zrangebyscore', KEYS[2], '0', ARGV[1])
        for _, client in ipairs(expired) do
          redis.call('zrem', KEYS[2], client)
          redis.call('hdel', KEYS[1], client)
        end
        return redis.call('hgetall', KEYS[1])
        """)

    func add(channel: String, info: ClientInfo, ttl: Int) async throws {
        let now = Clock.seconds()
        _ = try await redis.evalScript(
            Self.addScript, keys: [hashKey(channel), zsetKey(channel)],
            args: [info.client, info.json, Int(now) + ttl, ttl])
    }

    func remove(channel: String, clientID: String) async throws {
        _ = try await redis.pipeline([
            RedisCommand("HDEL", redis.key(hashKey(channel)), clientID),
            RedisCommand("ZREM", redis.key(zsetKey(channel)), clientID),
        ])
    }

    func presence(channel: String) async throws -> [String: ClientInfo] {
        let reply = try await redis.evalScript(
            Self.getScript, keys: [hashKey(channel), zsetKey(channel)], args: [Int(Clock.seconds())])
        guard let values = reply.array else { throw RedisError.protocolError("unexpected presence reply") }
        var result: [String: ClientInfo] = [:]
        var index = 0
        while index + 1 < values.count {
            if let client = values[index].string, let bytes = values[index + 1].bytes, let value = JSONValue.parse(bytes),
                let info = ClientInfo(json: value)
            {
                result[client] = info
            }
            index += 2
        }
        return result
    }
}
