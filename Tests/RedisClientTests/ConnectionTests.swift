import Foundation
import NIOCore
import Synchronization
import TestSupport
import Testing

@testable import RedisClient

/// Collects a subscriber's messages so tests can wait for them with a deadline.
final class MessageCollector: Sendable {
    private let received = Mutex<[RedisPubSubMessage]>([])
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(_ subscriber: RedisSubscriber) {
        let consumer = Task { [self] in
            for await message in subscriber.messages { self.received.withLock { $0.append(message) } }
        }
        task.withLock { $0 = consumer }
    }

    var messages: [RedisPubSubMessage] { received.withLock { $0 } }

    /// Waits (up to 10 s) until `count` messages arrived.
    func wait(for count: Int) async throws -> [RedisPubSubMessage] {
        for _ in 0..<1000 {
            let current = messages
            if current.count >= count { return current }
            try await Task.sleep(for: .milliseconds(10))
        }
        return messages
    }
}

final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}

@Suite("Redis connections, pool and subscriber")
struct ConnectionTests {
    @Test func tenThousandPipelinedCommandsReplyInOrder() async throws {
        try await TestRedis.withClient { (redis: RedisClient) async throws in
            let counter = redis.key("counter")
            var commands: [RedisCommand] = []
            for i in 0..<10_000 {
                if i % 2 == 0 {
                    commands.append(RedisCommand("INCR", counter))
                } else {
                    commands.append(RedisCommand("ECHO", "reply-\(i)"))
                }
            }
            let replies = try await redis.pipeline(commands)
            #expect(replies.count == 10_000)
            var ordered = true
            for (i, reply) in replies.enumerated() {
                let expected: RESPValue = i % 2 == 0 ? .integer(Int64(i / 2 + 1)) : .bulkString(Array("reply-\(i)".utf8))
                if reply != expected { ordered = false }
            }
            #expect(ordered)
        }
    }

    @Test func connectsOverTheUnixSocket() async throws {
        let socket = TestServices.redisSocket
        try await TestRedis.withClient(url: TestRedis.url + "?socket=" + socket) { (redis: RedisClient) async throws in
            try await redis.set("k", "v")
            #expect(try await redis.get("k")?.text == "v")
            // Redis flags a Unix-socket client `U` and names the socket as its address; the
            // blocking connections (leased ones) go the same way.
            let info = try #require(try await redis.send(RedisCommand("CLIENT", "INFO")).string)
            #expect(info.contains("addr=\(socket):0"))
            #expect(info.split(separator: " ").contains("flags=U"))
            let leased = try await redis.withBlockingConnection { try await $0.send(RedisCommand("CLIENT", "INFO")).string }
            #expect(leased?.split(separator: " ").contains("flags=U") == true)
        }
        var missing = try RedisConfiguration(url: TestRedis.url + "?socket=/nonexistent/redis.sock")
        missing.connectTimeout = .milliseconds(300)
        let nowhere = RedisClient(configuration: missing, logger: TestRedis.logger)
        do {
            _ = try await nowhere.get("k")
            Issue.record("a missing socket was reached")
        } catch let RedisError.unavailable(reason) {
            #expect(reason.contains("/nonexistent/redis.sock"))
        }
        await nowhere.close()
    }

    @Test func thousandConcurrentCallersShareThePool() async throws {
        try await TestRedis.withClient(poolSize: 4) { (redis: RedisClient) async throws in
            let values = try await withThrowingTaskGroup(of: Int64.self) { group in
                for _ in 0..<1000 { group.addTask { try await redis.incr("hits") } }
                var all: [Int64] = []
                for try await value in group { all.append(value) }
                return all
            }
            #expect(try await redis.get("hits")?.text == "1000")
            #expect(Set(values) == Set(1...1000))
            // Each caller got its own reply even though they share connections.
            let echoes = try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<500 {
                    group.addTask { try await redis.send(RedisCommand("ECHO", "e\(i)")).string == "e\(i)" }
                }
                return try await group.reduce(true) { $0 && $1 }
            }
            #expect(echoes)
        }
    }

    @Test func authDatabaseAndPrefixFromTheURL() async throws {
        let server = try await PrivateRedisServer(extraArguments: [
            "--requirepass", "topsecret", "--user", "alice", "on", ">wonderland", "~*", "&*", "+@all",
        ])
        do {
            let logger = TestRedis.logger
            let alice = RedisClient(
                configuration: try RedisConfiguration(url: "redis://alice:wonderland@127.0.0.1:\(server.port)/5?prefix=app:"),
                logger: logger)
            try await alice.set("k", "v")
            #expect(try await alice.send(RedisCommand("ACL", "WHOAMI")).string == "alice")

            var adminConfig = try RedisConfiguration(url: "redis://:topsecret@127.0.0.1:\(server.port)/5")
            adminConfig.keyPrefix = ""
            let admin5 = RedisClient(configuration: adminConfig, logger: logger)
            #expect(try await admin5.get("app:k")?.text == "v")
            adminConfig.database = 0
            let admin0 = RedisClient(configuration: adminConfig, logger: logger)
            #expect(try await admin0.get("app:k") == nil)

            var wrong = try RedisConfiguration(url: "redis://alice:nope@127.0.0.1:\(server.port)/0")
            wrong.connectTimeout = .seconds(1)
            let intruder = RedisClient(configuration: wrong, logger: logger)
            do {
                _ = try await intruder.get("k")
                Issue.record("a wrong password was accepted")
            } catch let RedisError.unavailable(reason) {
                #expect(reason.contains("AUTH"))
            }
            await #expect(throws: RedisError.self) { try await intruder.ping() }

            let anonymous = RedisClient(configuration: .init(port: server.port), logger: logger)
            do {
                _ = try await anonymous.get("k")
                Issue.record("no password was accepted")
            } catch let error as RedisError {
                #expect(error.serverErrorCode == "NOAUTH")
            }
            for client in [alice, admin5, admin0, intruder, anonymous] { await client.close() }
        }
        await server.destroy()
    }

    @Test func reconnectsAfterRedisRestartsWithoutANewClient() async throws {
        let server = try await PrivateRedisServer()
        do {
            var configuration = try RedisConfiguration(url: server.url)
            configuration.connectTimeout = .milliseconds(500)
            configuration.poolSize = 2
            let redis = RedisClient(configuration: configuration, logger: TestRedis.logger)
            try await redis.ping()
            try await redis.set("before", "1")
            try await redis.xgroupCreate("s", group: "g")

            // A blocked read in flight when Redis goes away fails with connectionClosed.
            let blocked = Task {
                try await redis.xreadgroup(group: "g", consumer: "c", streams: [("s", ">")], block: .seconds(30))
            }
            // Kill only once Redis holds the read: a fixed sleep can end before a busy machine sent it.
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(10)
            while clock.now < deadline {
                let info = try await redis.send(RedisCommand("INFO", "clients"))
                if info.string?.contains("blocked_clients:1") == true { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            await server.kill()
            await #expect(throws: RedisError.connectionClosed) { try await blocked.value }

            // While it is down: commands and health checks fail clearly.
            for _ in 0..<3 {
                do {
                    try await redis.set("during", "x")
                    Issue.record("a command succeeded while Redis was down")
                } catch let error as RedisError {
                    #expect(error == .connectionClosed || { if case .unavailable = error { true } else { false } }())
                }
            }
            do {
                try await redis.ping()
                Issue.record("ping succeeded while Redis was down")
            } catch let RedisError.unavailable(reason) {
                #expect(reason.contains("\(server.port)"))
            }

            try await server.start()
            try await redis.ping()
            try await redis.set("after", "2")
            #expect(try await redis.get("after")?.text == "2")
            let replies = try await redis.pipeline((0..<100).map { RedisCommand("ECHO", "\($0)") })
            #expect(replies.map { $0.string ?? "" } == (0..<100).map { "\($0)" })
            try await redis.xgroupCreate("s", group: "g")
            let empty = try await redis.xreadgroup(group: "g", consumer: "c", streams: [("s", ">")], block: .milliseconds(10))
            #expect(empty.isEmpty)
            await redis.close()
        }
        await server.destroy()
    }

    @Test func busyCallersGetTypedErrorsDuringARestartAndRecover() async throws {
        let server = try await PrivateRedisServer()
        do {
            var configuration = try RedisConfiguration(url: server.url)
            configuration.connectTimeout = .milliseconds(300)
            let redis = RedisClient(configuration: configuration, logger: TestRedis.logger)
            try await redis.ping()
            let restarted = Flag()
            // 20 callers keep sending until each has succeeded 20 times after the restart.
            let outcome = try await withThrowingTaskGroup(of: (untyped: Int, typed: Int).self) { group in
                for caller in 0..<20 {
                    group.addTask {
                        var untyped = 0
                        var typed = 0
                        var successesAfterRestart = 0
                        while successesAfterRestart < 20 {
                            do {
                                _ = try await redis.incr("caller:\(caller)")
                                if restarted.isSet { successesAfterRestart += 1 }
                            } catch is RedisError {
                                typed += 1
                                try await Task.sleep(for: .milliseconds(5))
                            } catch {
                                untyped += 1
                            }
                        }
                        return (untyped, typed)
                    }
                }
                try await Task.sleep(for: .milliseconds(100))
                await server.kill()
                try await Task.sleep(for: .milliseconds(400))
                try await server.start()
                restarted.set()
                var total = (untyped: 0, typed: 0)
                for try await result in group { total = (total.untyped + result.untyped, total.typed + result.typed) }
                return total
            }
            #expect(outcome.untyped == 0)
            #expect(outcome.typed > 0)  // the outage was seen, as RedisError
            await redis.close()
        }
        await server.destroy()
    }

    @Test func aCommandTimeoutFailsTheCommandAndTheNextOneReconnects() async throws {
        var configuration = try RedisConfiguration(url: TestRedis.url)
        configuration.keyPrefix = TestRedis.randomPrefix()
        // Long enough that a busy machine (the whole suite runs in parallel on two cores) does not
        // time out the ordinary commands below; the BLPOP outlives it by far.
        configuration.commandTimeout = .seconds(1)
        configuration.poolSize = 1
        let redis = RedisClient(configuration: configuration, logger: TestRedis.logger)
        await #expect(throws: RedisError.timeout) {
            // A blocking command on the multiplexed pool (wrong use) outlives the timeout.
            try await redis.send(RedisCommand("BLPOP", redis.key("empty-list"), 5))
        }
        try await redis.set("k", "v")
        #expect(try await redis.get("k")?.text == "v")
        // Blocking reads get their BLOCK time on top of the command timeout.
        try await redis.xgroupCreate("s", group: "g")
        let batches = try await redis.xreadgroup(group: "g", consumer: "c", streams: [("s", ">")], block: .milliseconds(1500))
        #expect(batches.isEmpty)
        await TestRedis.cleanUp(redis)
    }

    @Test func closedClientRefusesCommands() async throws {
        let redis = RedisClient(configuration: try RedisConfiguration(url: TestRedis.url), logger: TestRedis.logger)
        try await redis.ping()
        await redis.close()
        await #expect(throws: RedisError.self) { try await redis.send(RedisCommand("PING")) }
        await #expect(throws: RedisError.self) { try await redis.ping() }
        await #expect(throws: RedisError.self) {
            try await redis.xreadgroup(group: "g", consumer: "c", streams: [("s", ">")], block: .seconds(1))
        }
    }

    @Test func subscriberReceivesChannelAndPatternMessages() async throws {
        try await TestRedis.withClient { (redis: RedisClient) async throws in
            let subscriber = redis.makeSubscriber()
            let collector = MessageCollector(subscriber)
            try await subscriber.subscribe(["chat:1", "chat:2"])
            try await subscriber.psubscribe(["room:*"])
            #expect(try await redis.publish("chat:1", "hello") == 1)
            #expect(try await redis.publish("room:42", [0, 1, 2] as [UInt8]) == 1)
            #expect(try await redis.publish("chat:2", "bye") == 1)
            let messages = try await collector.wait(for: 3)
            #expect(messages.count == 3)
            #expect(messages.map(\.channel) == ["chat:1", "room:42", "chat:2"])
            #expect(messages[0].text == "hello")
            #expect(messages[0].pattern == nil)
            #expect(messages[1].pattern == "room:*")
            #expect(Array(messages[1].payload.readableBytesView) == [0, 1, 2])

            try await subscriber.unsubscribe(["chat:1"])
            try await subscriber.punsubscribe(["room:*"])
            #expect(try await redis.publish("chat:1", "nobody") == 0)
            #expect(try await redis.publish("room:1", "nobody") == 0)
            #expect(try await redis.publish("chat:2", "still") == 1)
            #expect(try await collector.wait(for: 4).last?.text == "still")
            // Another client with another prefix does not see these channels.
            #expect(try await redis.send(RedisCommand("PUBLISH", "chat:2", "unprefixed")).int == 0)
            await subscriber.close()
        }
    }

    @Test func subscriberResubscribesAfterRedisRestarts() async throws {
        let server = try await PrivateRedisServer()
        do {
            var configuration = try RedisConfiguration(url: server.url)
            // Short enough for the probes below to fail fast while Redis is down; long enough for
            // a busy machine to connect to a Redis that is up (a CI run timed out at 500 ms).
            configuration.connectTimeout = .seconds(2)
            let redis = RedisClient(configuration: configuration, logger: TestRedis.logger)
            let subscriber = redis.makeSubscriber()
            let collector = MessageCollector(subscriber)
            let resubscriptions = Task {
                var count = 0
                for await _ in subscriber.resubscriptions { count += 1 }
                return count
            }
            try await subscriber.subscribe(["events"])
            try await subscriber.psubscribe(["users:*"])
            #expect(try await redis.publish("events", "one") == 1)
            #expect(try await collector.wait(for: 1).count == 1)

            await server.kill()
            try await Task.sleep(for: .milliseconds(300))
            try await server.start()

            // Once the subscriber is back, publishes reach it again, on the channel and the pattern.
            var receivers = 0
            for _ in 0..<500 where receivers == 0 {
                receivers = (try? await redis.publish("events", "probe")) ?? 0
                if receivers == 0 { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(receivers == 1)
            #expect(try await redis.publish("users:7", "two") == 1)
            let messages = try await collector.wait(for: 3)
            #expect(messages.map(\.text) == ["one", "probe", "two"])
            #expect(messages.last?.channel == "users:7")
            await subscriber.close()
            // The first connection is no resubscription; the one after the restart is, once.
            #expect(await resubscriptions.value == 1)
            await redis.close()
        }
        await server.destroy()
    }

    @Test func subscribeWhileRedisIsDownTakesEffectWhenItReturns() async throws {
        let server = try await PrivateRedisServer()
        await server.kill()
        do {
            var configuration = try RedisConfiguration(url: server.url)
            configuration.connectTimeout = .milliseconds(300)
            let redis = RedisClient(configuration: configuration, logger: TestRedis.logger)
            let subscriber = redis.makeSubscriber()
            let collector = MessageCollector(subscriber)
            await #expect(throws: RedisError.self) { try await subscriber.subscribe(["late"]) }
            try await server.start()
            var receivers = 0
            for _ in 0..<500 where receivers == 0 {
                receivers = (try? await redis.publish("late", "hi")) ?? 0
                if receivers == 0 { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(receivers == 1)
            #expect(try await collector.wait(for: 1).first?.text == "hi")
            await subscriber.close()
            await redis.close()
        }
        await server.destroy()
    }
}
