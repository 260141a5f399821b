import Foundation
import Logging
import Realtime
import RedisClient
import SwitchboardCore
import Synchronization
import TestSupport
import Testing

@testable import Gateway

/// Collects what a broker delivers.
final class RecordingHandler: BrokerEventHandler {
    let publications = Mutex<[(String, Publication)]>([])
    let controls = Mutex<[ControlCommand]>([])

    func handlePublication(channel: String, publication: Publication, position: StreamPosition) {
        publications.withLock { $0.append((channel, publication)) }
    }
    func handleJoin(channel: String, info: ClientInfo) {}
    func handleLeave(channel: String, info: ClientInfo) {}
    func handleControl(_ command: ControlCommand) { controls.withLock { $0.append(command) } }
}

/// The Redis engine against a real Redis (SB_TEST_REDIS_URL), each test under its own key prefix.
@Suite struct RedisEngineTests {
    func client() throws -> RedisClient { try TestRedis.client(prefix: TestRedis.randomPrefix("gateway")) }

    func cleanUp(_ redis: RedisClient) async throws { await TestRedis.discard(redis) }

    /// Two gateway nodes' brokers on one Redis, each with its handler; stopped and cleaned up
    /// however `body` ends.
    func withTwoNodes(
        _ body: (_ nodeA: RedisBroker, _ nodeB: RedisBroker, _ handlerA: RecordingHandler, _ handlerB: RecordingHandler) async throws -> Void
    ) async throws {
        let redis = try client()
        let nodeA = RedisBroker(redis: redis, prefix: "gw:", logger: Logger(label: "a"))
        let nodeB = RedisBroker(redis: redis, prefix: "gw:", logger: Logger(label: "b"))
        let handlerA = RecordingHandler()
        let handlerB = RecordingHandler()
        let outcome: Result<Void, any Error>
        do {
            try await nodeA.start(handler: handlerA)
            try await nodeB.start(handler: handlerB)
            try await body(nodeA, nodeB, handlerA, handlerB)
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        await nodeA.stop()
        await nodeB.stop()
        try await cleanUp(redis)
        try outcome.get()
    }

    static func waitFor(_ condition: () -> Bool) async {
        for _ in 0..<100 where !condition() { try? await Task.sleep(for: .milliseconds(20)) }
    }

    @Test func publishesKeepsCappedHistoryAndDeliversToSubscribedNodes() async throws {
        try await withTwoNodes { nodeA, nodeB, handlerA, handlerB in
            try await nodeB.subscribe("chat:x")
            let options = PublishOptions(historySize: 3, historyTTL: 60, historyMetaTTL: 600)
            var positions: [StreamPosition] = []
            for n in 1...5 {
                positions.append(try await nodeA.publish(channel: "chat:x", publication: Publication(data: "\(n)"), options: options))
            }
            #expect(positions.map(\.offset) == [1, 2, 3, 4, 5])
            #expect(Set(positions.map(\.epoch)).count == 1)

            await Self.waitFor { handlerB.publications.withLock { $0.count } == 5 }
            #expect(handlerB.publications.withLock { $0.map(\.1.offset) } == [1, 2, 3, 4, 5])
            #expect(handlerA.publications.withLock { $0.isEmpty })  // node A has no subscribers

            let all = try await nodeA.history(channel: "chat:x", query: HistoryQuery(limit: -1))
            #expect(all.publications.map(\.data) == ["3", "4", "5"])
            #expect(all.position == positions[4])
            let since = try await nodeA.history(channel: "chat:x", query: HistoryQuery(since: positions[3], limit: 10))
            #expect(since.publications.map(\.offset) == [5])
            let reversed = try await nodeA.history(channel: "chat:x", query: HistoryQuery(limit: 2, reverse: true))
            #expect(reversed.publications.map(\.offset) == [5, 4])

            try await nodeB.unsubscribe("chat:x")
            _ = try await nodeA.publish(channel: "chat:x", publication: Publication(data: "6"), options: options)
            try await nodeA.publishControl(ControlCommand(kind: .disconnect, user: "u"))
            await Self.waitFor { handlerB.controls.withLock { $0.count } == 1 && handlerA.controls.withLock { $0.count } == 1 }
            #expect(handlerB.publications.withLock { $0.count } == 5)
            #expect(handlerA.controls.withLock { $0 } == [ControlCommand(kind: .disconnect, user: "u")])

        }
    }

    @Test func anIdempotentPublishReachesHistoryAndSubscribersOnce() async throws {
        try await withTwoNodes { nodeA, nodeB, _, handlerB in
            try await nodeB.subscribe("chat:i")
            try await nodeB.subscribe("feed:i")
            var options = PublishOptions(historySize: 10, historyTTL: 60, historyMetaTTL: 600)
            options.idempotencyKey = "retry-1"
            let first = try await nodeA.publish(channel: "chat:i", publication: Publication(data: "1"), options: options)
            let again = try await nodeA.publish(channel: "chat:i", publication: Publication(data: "1"), options: options)
            #expect(first.offset == 1)
            #expect(again == first)
            var noHistory = PublishOptions()
            noHistory.idempotencyKey = "retry-1"
            _ = try await nodeA.publish(channel: "feed:i", publication: Publication(data: "2"), options: noHistory)
            _ = try await nodeA.publish(channel: "feed:i", publication: Publication(data: "2"), options: noHistory)

            await Self.waitFor { handlerB.publications.withLock { $0.count } >= 2 }
            try await Task.sleep(for: .milliseconds(200))
            #expect(handlerB.publications.withLock { $0.map { "\($0.0)=\($0.1.data)" } } == ["chat:i=1", "feed:i=2"])
            #expect(try await nodeA.history(channel: "chat:i", query: HistoryQuery(limit: -1)).publications.count == 1)

        }
    }

    /// Publishes started without waiting (as a connection with several in flight does) keep their
    /// order in history, offsets and delivery, and each answers its own position.
    @Test func publishesStartedTogetherKeepTheirOrder() async throws {
        try await withTwoNodes { nodeA, nodeB, _, handlerB in
            for channel in ["chat:o1", "chat:o2", "feed:o"] { try await nodeB.subscribe(channel) }
            let history = PublishOptions(historySize: 1000, historyTTL: 60, historyMetaTTL: 600)
            let count = 300
            let results = Mutex<[Int: StreamPosition]>([:])
            for n in 0..<count {
                let channel = ["chat:o1", "chat:o2", "feed:o"][n % 3]
                var options = channel == "feed:o" ? PublishOptions() : history
                if n % 30 == 1 { options.idempotencyKey = "key-\(n)" }
                nodeA.startPublish(channel: channel, publication: Publication(data: "\(n)"), options: options) { result in
                    if case .success(let position) = result { results.withLock { $0[n] = position } }
                }
            }
            await Self.waitFor { results.withLock { $0.count } == count && handlerB.publications.withLock { $0.count } == count }
            let positions = results.withLock { $0 }
            #expect(positions.count == count)
            for (index, channel) in ["chat:o1", "chat:o2"].enumerated() {
                let mine = stride(from: index, to: count, by: 3)
                #expect(mine.map { positions[$0]?.offset } == (1...UInt64(count / 3)).map { $0 })
                let stored = try await nodeA.history(channel: channel, query: HistoryQuery(limit: -1))
                #expect(stored.publications.map(\.data) == mine.map { "\($0)" })
                let delivered = handlerB.publications.withLock { $0.filter { $0.0 == channel } }
                #expect(delivered.map(\.1.data) == mine.map { "\($0)" })
                #expect(delivered.map(\.1.offset) == (1...UInt64(count / 3)).map { $0 })
            }
            #expect(handlerB.publications.withLock { $0.filter { $0.0 == "feed:o" }.map(\.1.data) } == stride(from: 2, to: count, by: 3).map { "\($0)" })

        }
    }

    /// A connection's publishes overlap on the Redis engine, yet it gets its replies in order, a
    /// history read after them sees them all, and a subscriber receives them in order.
    @Test func aConnectionsPublishesAnswerInOrderAndPrecedeItsNextCommand() async throws {
        let redis = try client()
        let template = makeNode { $0.namespaces[0].options.historySize = 1000 }
        let node = Node(
            configuration: template.configuration, broker: RedisBroker(redis: redis, prefix: "gw:", logger: Logger(label: "n")),
            presence: RedisPresenceManager(redis: redis, prefix: "gw:"), logger: Logger(label: "n"))
        try await node.start()
        let token = GatewayTokens.mint(secret: "secret", user: "42", ttl: 3600)
        let subscriberTransport = RecordingTransport()
        let subscriber = node.makeClient(transport: subscriberTransport)
        await subscriber.send(#"{"id":1,"connect":{"token":"\#(token)"}}"#)
        await subscriber.send(#"{"id":2,"subscribe":{"channel":"chat:po"}}"#)
        let transport = RecordingTransport()
        let publisher = node.makeClient(transport: transport)
        await publisher.send(#"{"id":1,"connect":{"token":"\#(token)"}}"#)
        await publisher.send(#"{"id":2,"subscribe":{"channel":"chat:po"}}"#)
        let count = 100
        let publishes = (0..<count).map { #"{"id":\#($0 + 3),"publish":{"channel":"chat:po","data":\#($0)}}"# }
        await publisher.send(publishes.joined(separator: "\n") + "\n" + #"{"id":\#(count + 3),"history":{"channel":"chat:po","limit":-1}}"#)
        // The publisher is subscribed too: its replies (with ids) and pushes (without) interleave.
        let lastID = Int64(count + 3)
        await Self.waitFor { transport.replies.contains { $0["id"]?.int64Value == lastID } }
        #expect(transport.replies.compactMap { $0["id"]?.int64Value } == (1...lastID).map { $0 })
        guard case .array(let history)? = transport.replies.first(where: { $0["id"]?.int64Value == lastID })?["history"]?["publications"] else {
            Issue.record("no history in \(transport.messages.last ?? "")")
            return
        }
        #expect(history.map { $0["data"]?.int64Value } == (0..<Int64(count)).map { $0 })
        await Self.waitFor { subscriberTransport.replies.compactMap { $0["push"]?["pub"] }.count == count }
        let pushes = subscriberTransport.replies.compactMap { $0["push"]?["pub"] }
        #expect(pushes.map { $0["data"]?.int64Value } == (0..<Int64(count)).map { $0 })
        #expect(pushes.map { $0["offset"]?.int64Value } == (1...Int64(count)).map { $0 })
        await node.shutdown()
        try await cleanUp(redis)
    }

    /// A server API broadcast publishes to every channel at once and answers per channel, in order.
    @Test func aBroadcastAnswersEachChannelInOrder() async throws {
        let redis = try client()
        let template = makeNode()
        let node = Node(
            configuration: template.configuration, broker: RedisBroker(redis: redis, prefix: "gw:", logger: Logger(label: "n")),
            presence: RedisPresenceManager(redis: redis, prefix: "gw:"), logger: Logger(label: "n"))
        try await node.start()
        let api = HTTPAPI(node: node)
        _ = try await api.call(method: "publish", params: try #require(JSONValue.parse(Array(#"{"channel":"chat:b2","data":0}"#.utf8))))
        let channels = #"["chat:b1","chat:b2","nowhere:b","chat:b1",7]"#
        let result = try await api.call(
            method: "broadcast", params: try #require(JSONValue.parse(Array(#"{"channels":\#(channels),"data":{"n":1}}"#.utf8))))
        guard case .array(let responses)? = JSONValue.parse(Array(result.utf8))?["responses"] else {
            Issue.record("no responses in \(result)")
            return
        }
        #expect(responses.map { $0["result"]?["offset"]?.int64Value ?? -$0["error"]!["code"]!.int64Value! } == [1, 2, -102, 2, -107])
        await node.shutdown()
        try await cleanUp(redis)
    }

    /// A Redis that lost its scripts (restarted, SCRIPT FLUSH) still takes pipelined scripted
    /// publishes in order, even when another node has loaded one of the two publish scripts
    /// again since and a pipeline mixes both on one channel.
    @Test(arguments: [false, true])
    func pipelinedPublishesSurviveALostScriptCache(anotherNodeReloadedOneScript: Bool) async throws {
        let server = try await PrivateRedisServer()
        let redis = RedisClient(configuration: try RedisConfiguration(url: server.url), logger: Logger(label: "test"))
        let broker = RedisBroker(redis: redis, prefix: "gw:", logger: Logger(label: "a"))
        do {
            try await broker.start(handler: RecordingHandler())
            let options = PublishOptions(historySize: 10, historyTTL: 60, historyMetaTTL: 600)
            _ = try await broker.publish(channel: "chat:s", publication: Publication(data: "0"), options: options)
            _ = try await redis.send(RedisCommand("SCRIPT", "FLUSH"))
            if anotherNodeReloadedOneScript { try await redis.scriptLoad(RedisBroker.idempotentPublishScript.source) }
            let results = Mutex<[Int: Result<StreamPosition, any Error>]>([:])
            for n in 1...6 {
                var publishOptions = options
                if n.isMultiple(of: 2) { publishOptions.idempotencyKey = "k\(n)" }
                broker.startPublish(channel: "chat:s", publication: Publication(data: "\(n)"), options: publishOptions) { result in
                    results.withLock { $0[n] = result }
                }
            }
            await Self.waitFor { results.withLock { $0.count } == 6 }
            let offsets = results.withLock { results in (1...6).map { try? results[$0]?.get().offset } }
            #expect(offsets == [2, 3, 4, 5, 6, 7])
            let stored = try await broker.history(channel: "chat:s", query: HistoryQuery(limit: -1))
            #expect(stored.publications.map(\.data) == ["0", "1", "2", "3", "4", "5", "6"])
        } catch {
            Issue.record(error)
        }
        await broker.stop()
        await redis.close()
        await server.destroy()
    }

    /// Redis pub/sub drops what is published while a node's subscriber connection is down, and the
    /// channel's next publication, which would show the gap, may never come. When the connection
    /// is back, the node finds the subscriber behind its channel and unsubscribes it with 2500; a
    /// resubscribe with recovery brings what was lost. (A private Redis: the test kills its
    /// pub/sub connections.)
    @Test func aPublicationLostWhileThePubSubConnectionWasDownIsRecovered() async throws {
        let server = try await PrivateRedisServer()
        let redis = RedisClient(configuration: try RedisConfiguration(url: server.url), logger: Logger(label: "test"))
        let template = makeNode { $0.channelPositionCheckDelay = 0 }
        let node = Node(
            configuration: template.configuration, broker: RedisBroker(redis: redis, prefix: "gw:", logger: Logger(label: "n")),
            presence: MemoryPresenceManager(), logger: Logger(label: "n"))
        do {
            try await node.start()
            let transport = RecordingTransport()
            let client = node.makeClient(transport: transport)
            await client.send(#"{"id":1,"connect":{"token":"\#(GatewayTokens.mint(secret: "secret", user: "42", ttl: 3600))"}}"#)
            await client.send(#"{"id":2,"subscribe":{"channel":"chat:gap"}}"#)
            await client.send(#"{"id":3,"publish":{"channel":"chat:gap","data":"heard"}}"#)
            await Self.waitFor { transport.replies.contains { $0["push"]?["pub"] != nil } }
            let epochs = transport.replies.compactMap { $0["subscribe"]?["epoch"]?.stringValue }
            let epoch = try #require(epochs.first)

            // Appended to the channel's stream, published where no node listens: lost on the way.
            let keys = RealtimeEngineKeys(prefix: "gw:")
            _ = try await redis.evalScript(
                RealtimeEngineScripts.publish, keys: [keys.streamKey("chat:gap"), keys.metaKey("chat:gap")],
                args: [Publication(data: #""lost""#).json, 10, 60, 600, redis.key("gw:nowhere"), "unused"])
            _ = try await redis.send(RedisCommand("CLIENT", "KILL", "TYPE", "pubsub"))

            let unsubscribeCode = { transport.replies.compactMap { $0["push"]?["unsubscribe"]?["code"]?.int64Value }.first }
            for _ in 0..<250 where unsubscribeCode() == nil { try await Task.sleep(for: .milliseconds(20)) }
            #expect(unsubscribeCode() == Int64(UnsubscribeCode.insufficient))
            #expect(client.subscribedChannels.isEmpty)

            await client.send(#"{"id":4,"subscribe":{"channel":"chat:gap","recover":true,"epoch":"\#(epoch)","offset":1}}"#)
            let recovered = try #require(transport.replies.last { $0["id"]?.int64Value == 4 }?["subscribe"])
            #expect(recovered["recovered"] == .bool(true))
            guard case .array(let publications)? = recovered["publications"] else {
                Issue.record("nothing recovered: \(recovered)")
                throw CancellationError()
            }
            #expect(publications.map { $0["data"]?.stringValue } == ["lost"])
            #expect(publications.map { $0["offset"]?.int64Value } == [2])
        } catch {
            Issue.record(error)
        }
        await node.shutdown()
        await redis.close()
        await server.destroy()
    }

    @Test func nodesFindEachOtherThroughTheDirectory() async throws {
        let redis = try client()
        let directory = RedisNodeDirectory(redis: redis, prefix: "gw:")
        func info(_ uid: String, clients: Int) -> NodeInfo {
            NodeInfo(
                uid: uid, name: "node-\(uid)", version: "v", numClients: clients, numUsers: clients, numChannels: 1, numSubs: clients,
                uptime: 1, messagesIn: 0, messagesOut: 0, rss: 0)
        }
        try await directory.announce(info("b", clients: 3), channels: ["chat:x": 2, "chat:y": 1])
        try await directory.announce(info("c", clients: 1), channels: ["chat:x": 1])
        // A node that stopped announcing long ago no longer counts.
        _ = try await redis.send(RedisCommand("HSET", redis.key("gw:nodes"), "gone", #"{"at":1,"info":{"uid":"gone"}}"#))

        let nodes = try await directory.nodes(local: info("a", clients: 5))
        #expect(nodes.map(\.uid) == ["a", "b", "c"])
        #expect(nodes.map(\.numClients) == [5, 3, 1])
        let channels = try await directory.channels(localUID: "a", local: ["chat:x": 4, "chat:z": 1])
        #expect(channels == ["chat:x": 7, "chat:y": 1, "chat:z": 1])

        try await directory.withdraw(uid: "b")
        #expect(try await directory.nodes(local: info("a", clients: 5)).map(\.uid) == ["a", "c"])
        #expect(try await redis.send(RedisCommand("HEXISTS", redis.key("gw:nodes"), "gone")).int == 0)
        try await cleanUp(redis)
    }

    @Test func presenceIsSharedAndExpires() async throws {
        let redis = try client()
        let presence = RedisPresenceManager(redis: redis, prefix: "gw:")
        try await presence.add(channel: "chat:p", info: ClientInfo(user: "1", client: "c1", connInfo: #"{"n":1}"#), ttl: 60)
        try await presence.add(channel: "chat:p", info: ClientInfo(user: "1", client: "c2"), ttl: 60)
        try await presence.add(channel: "chat:p", info: ClientInfo(user: "2", client: "c3"), ttl: 60)
        // c3's node stopped refreshing it: its expiry lies in the past.
        _ = try await redis.send(RedisCommand("ZADD", redis.key("gw:presence-expire:chat:p"), 1, "c3"))
        let entries = try await presence.presence(channel: "chat:p")
        #expect(Set(entries.keys) == ["c1", "c2"])
        #expect(entries["c1"]?.connInfo == #"{"n":1}"#)
        let stats = try await presence.stats(channel: "chat:p")
        #expect(stats.numClients == 2 && stats.numUsers == 1)
        try await presence.remove(channel: "chat:p", clientID: "c1")
        #expect(Set(try await presence.presence(channel: "chat:p").keys) == ["c2"])
        try await cleanUp(redis)
    }
}

