/// How gateway nodes find each other for `info` and `channels`: `NodeInfo` and the local and Redis directories.
import Foundation
import RedisClient
import SwitchboardCore

/// What one gateway node reports about itself to the server API's `info`.
struct NodeInfo: Sendable, Hashable {
    var uid: String
    var name: String
    var version: String
    var numClients: Int
    var numUsers: Int
    var numChannels: Int
    var numSubs: Int
    var uptime: Int
    var messagesIn: Int
    var messagesOut: Int
    var rss: Int

    func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("uid", uid)
        writer.field("name", name)
        writer.field("version", version)
        writer.field("num_clients", numClients)
        writer.field("num_users", numUsers)
        writer.field("num_channels", numChannels)
        writer.field("num_subs", numSubs)
        writer.field("uptime", uptime)
        writer.key("metrics")
        writer.beginObject()
        writer.field("interval", 60)
        writer.key("items")
        writer.beginObject()
        writer.field("messages_in", messagesIn)
        writer.field("messages_out", messagesOut)
        writer.endObject()
        writer.endObject()
        writer.key("process")
        writer.beginObject()
        writer.field("cpu", 0)
        writer.field("rss", rss)
        writer.endObject()
        writer.endObject()
    }

    var json: String {
        var writer = JSONWriter(capacity: 256)
        write(to: &writer)
        return writer.output
    }

    init(
        uid: String, name: String, version: String, numClients: Int, numUsers: Int, numChannels: Int, numSubs: Int,
        uptime: Int, messagesIn: Int, messagesOut: Int, rss: Int
    ) {
        self.uid = uid
        self.name = name
        self.version = version
        self.numClients = numClients
        self.numUsers = numUsers
        self.numChannels = numChannels
        self.numSubs = numSubs
        self.uptime = uptime
        self.messagesIn = messagesIn
        self.messagesOut = messagesOut
        self.rss = rss
    }

    init?(json value: JSONValue) {
        guard let uid = value["uid"]?.stringValue else { return nil }
        func int(_ value: JSONValue?) -> Int { value?.int64Value.map { Int($0) } ?? 0 }
        self.init(
            uid: uid, name: value["name"]?.stringValue ?? "", version: value["version"]?.stringValue ?? "",
            numClients: int(value["num_clients"]), numUsers: int(value["num_users"]), numChannels: int(value["num_channels"]),
            numSubs: int(value["num_subs"]), uptime: int(value["uptime"]),
            messagesIn: int(value["metrics"]?["items"]?["messages_in"]), messagesOut: int(value["metrics"]?["items"]?["messages_out"]),
            rss: int(value["process"]?["rss"]))
    }
}

/// Where nodes find each other for the server API's `info` and `channels`: every node announces
/// its info and its channels (with local subscriber counts) every few seconds; readers merge this
/// node's live values with what the others announced recently.
protocol NodeDirectory: Sendable {
    func announce(_ info: NodeInfo, channels: [String: Int]) async throws
    func withdraw(uid: String) async throws
    /// Every live node, this one (`local`) first.
    func nodes(local: NodeInfo) async throws -> [NodeInfo]
    /// Channels of every live node, subscriber counts summed.
    func channels(localUID: String, local: [String: Int]) async throws -> [String: Int]
}

/// One node alone: only its own live values.
struct LocalNodeDirectory: NodeDirectory {
    func announce(_ info: NodeInfo, channels: [String: Int]) async throws {}
    func withdraw(uid: String) async throws {}
    func nodes(local: NodeInfo) async throws -> [NodeInfo] { [local] }
    func channels(localUID: String, local: [String: Int]) async throws -> [String: Int] { local }
}

/// Nodes sharing one Redis. Keys (under the gateway prefix):
/// - `gw:nodes` hash: node uid → `{"at": unix seconds, "info": NodeInfo}`; entries older than
///   `lifetime` are ignored and removed on read
/// - `gw:node-channels:{uid}` hash: channel → local subscriber count, replaced on every
///   announcement, expiring after `lifetime`
struct RedisNodeDirectory: NodeDirectory {
    let redis: RedisClient
    let prefix: String
    /// Seconds an announcement counts (several announcement intervals).
    var lifetime = 15

    private var nodesKey: String { prefix + "nodes" }
    private func channelsKey(_ uid: String) -> String { prefix + "node-channels:" + uid }

    /// KEYS: nodes hash, this node's channels hash. ARGV: uid, entry, lifetime, then channel/count pairs.
    static let announceScript = RedisScript(
        """
        redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
        redis.call('del', KEYS[2])
        for i = 4, #ARGV, 2000 do
          local last = math.min(i + 1999, #ARGV)
          redis.call('hset', KEYS[2], unpack(ARGV, i, last))
        end
        redis.call('expire', KEYS[2], ARGV[3])
        return 1
        """)

    func announce(_ info: NodeInfo, channels: [String: Int]) async throws {
        var args: [any RESPArgument] = [info.uid, #"{"at":\#(Clock.seconds()),"info":\#(info.json)}"#, lifetime]
        args.reserveCapacity(3 + channels.count * 2)
        for (channel, count) in channels {
            args.append(channel)
            args.append(count)
        }
        _ = try await redis.evalScript(Self.announceScript, keys: [nodesKey, channelsKey(info.uid)], args: args)
    }

    func withdraw(uid: String) async throws {
        _ = try await redis.pipeline([
            RedisCommand("HDEL", redis.key(nodesKey), uid),
            RedisCommand("DEL", redis.key(channelsKey(uid))),
        ])
    }

    /// The other live nodes' infos, dropping stale entries.
    private func others(excluding uid: String) async throws -> [NodeInfo] {
        let reply = try await redis.send(RedisCommand("HGETALL", redis.key(nodesKey)))
        guard let values = reply.array else { return [] }
        let now = Clock.seconds()
        var live: [NodeInfo] = []
        var stale: [String] = []
        var index = 0
        while index + 1 < values.count {
            defer { index += 2 }
            guard let member = values[index].string, member != uid else { continue }
            guard let bytes = values[index + 1].bytes, let entry = JSONValue.parse(bytes),
                let at = entry["at"]?.int64Value, now - at <= Int64(lifetime), let info = entry["info"].flatMap(NodeInfo.init(json:))
            else {
                stale.append(member)
                continue
            }
            live.append(info)
        }
        if !stale.isEmpty {
            _ = try? await redis.send(RedisCommand("HDEL", arguments: [redis.key(nodesKey)] + stale))
        }
        return live.sorted { $0.name < $1.name }
    }

    func nodes(local: NodeInfo) async throws -> [NodeInfo] {
        [local] + (try await others(excluding: local.uid))
    }

    func channels(localUID: String, local: [String: Int]) async throws -> [String: Int] {
        var result = local
        for node in try await others(excluding: localUID) {
            let reply = try await redis.send(RedisCommand("HGETALL", redis.key(channelsKey(node.uid))))
            guard let values = reply.array else { continue }
            var index = 0
            while index + 1 < values.count {
                if let channel = values[index].string, let count = values[index + 1].string.flatMap({ Int($0) }) {
                    result[channel, default: 0] += count
                }
                index += 2
            }
        }
        return result
    }
}
