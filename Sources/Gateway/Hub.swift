/// The hub (after centrifuge's hub.go): this node's connections and local channel subscribers, sharded.
import Synchronization

/// This node's connections and local channel subscribers, sharded by name so fan-out and
/// subscribe/unsubscribe from many connections do not contend on one lock.
final class Hub: Sendable {
    private struct ClientShard {
        var clients: [String: Client] = [:]
    }

    private struct ChannelShard {
        var channels: [String: [LoopSubscribers]] = [:]
    }

    /// One channel's local subscribers served by one event loop (`Transport.fanOutBatcher`; nil
    /// for connections without one). Taking them for a fan-out copies no subscriber: the
    /// dictionary is shared until the next subscribe or unsubscribe of the channel on that loop.
    struct LoopSubscribers: Sendable {
        let batcher: FlushBatcher?
        var clients: [ObjectIdentifier: Client]
    }

    private static let shardCount = 32
    private let clientShards: [Locked<ClientShard>]
    private let channelShards: [Locked<ChannelShard>]
    /// Shard of a user's clients lives with the user, so user lookups touch one shard.
    private let userShards: [Locked<[String: [String: Client]]>]

    init() {
        clientShards = (0..<Self.shardCount).map { _ in Locked(ClientShard()) }
        channelShards = (0..<Self.shardCount).map { _ in Locked(ChannelShard()) }
        userShards = (0..<Self.shardCount).map { _ in Locked([:]) }
    }

    private func shard(_ key: String) -> Int {
        var hasher = Hasher()
        hasher.combine(key)
        return Int(UInt(bitPattern: hasher.finalize()) % UInt(Self.shardCount))
    }

    // MARK: connections

    func add(_ client: Client, user: String) {
        clientShards[shard(client.id)].withLock { $0.clients[client.id] = client }
        userShards[shard(user)].withLock { $0[user, default: [:]][client.id] = client }
    }

    func remove(_ client: Client, user: String) {
        clientShards[shard(client.id)].withLock { _ = $0.clients.removeValue(forKey: client.id) }
        userShards[shard(user)].withLock { users in
            users[user]?[client.id] = nil
            if users[user]?.isEmpty == true { users[user] = nil }
        }
    }

    func clients(ofUser user: String) -> [Client] {
        userShards[shard(user)].withLock { Array(($0[user] ?? [:]).values) }
    }

    /// Every connection, copied into one array (the timers walk it once a second).
    func allClients() -> [Client] {
        var clients: [Client] = []
        for shard in clientShards {
            shard.withLock { shard in
                clients.reserveCapacity(clients.count + shard.clients.count)
                clients.append(contentsOf: shard.clients.values)
            }
        }
        return clients
    }

    var connectionCount: Int {
        clientShards.reduce(0) { total, shard in total + shard.withLock { $0.clients.count } }
    }

    var userCount: Int {
        userShards.reduce(0) { total, shard in total + shard.withLock { $0.count } }
    }

    // MARK: subscriptions

    /// Adds a local subscriber; true when it is the channel's first one on this node.
    @discardableResult
    func addSubscriber(_ client: Client, to channel: String) -> Bool {
        let batcher = client.transport.fanOutBatcher
        return channelShards[shard(channel)].withLock { shard in
            let isFirst = shard.channels[channel] == nil
            shard.channels[channel, default: []].add(client, servedBy: batcher)
            return isFirst
        }
    }

    /// Removes a local subscriber; true when the channel has no local subscribers left.
    @discardableResult
    func removeSubscriber(_ client: Client, from channel: String) -> Bool {
        let batcher = client.transport.fanOutBatcher
        return channelShards[shard(channel)].withLock { shard in
            guard shard.channels[channel]?.remove(client, servedBy: batcher) == true else { return false }
            if shard.channels[channel]?.isEmpty == true {
                shard.channels[channel] = nil
                return true
            }
            return false
        }
    }

    func subscribers(of channel: String) -> [Client] {
        channelShards[shard(channel)].withLock { shard in
            guard let loops = shard.channels[channel] else { return [] }
            return loops.flatMap { $0.clients.values }
        }
    }

    /// A channel's local subscribers by event loop, for a fan-out: no subscriber is copied.
    func subscribersByLoop(of channel: String) -> [LoopSubscribers] {
        channelShards[shard(channel)].withLock { $0.channels[channel] ?? [] }
    }

    /// Channel names with their number of local subscribers.
    func channels() -> [String: Int] {
        var result: [String: Int] = [:]
        for shard in channelShards {
            shard.withLock { shard in
                for (channel, loops) in shard.channels { result[channel] = loops.subscriberCount }
            }
        }
        return result
    }

    var subscriptionCount: Int {
        channelShards.reduce(0) { total, shard in
            total + shard.withLock { $0.channels.values.reduce(0) { $0 + $1.subscriberCount } }
        }
    }
}

extension [Hub.LoopSubscribers] {
    fileprivate var subscriberCount: Int { reduce(0) { $0 + $1.clients.count } }

    fileprivate mutating func add(_ client: Client, servedBy batcher: FlushBatcher?) {
        if let index = firstIndex(where: { $0.batcher === batcher }) {
            self[index].clients[ObjectIdentifier(client)] = client
        } else {
            append(Hub.LoopSubscribers(batcher: batcher, clients: [ObjectIdentifier(client): client]))
        }
    }

    /// False when `client` was not a subscriber. A loop left without subscribers is dropped.
    fileprivate mutating func remove(_ client: Client, servedBy batcher: FlushBatcher?) -> Bool {
        guard let index = firstIndex(where: { $0.batcher === batcher }),
            self[index].clients.removeValue(forKey: ObjectIdentifier(client)) != nil
        else { return false }
        if self[index].clients.isEmpty { remove(at: index) }
        return true
    }
}
