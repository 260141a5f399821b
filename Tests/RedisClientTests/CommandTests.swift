import Foundation
import TestSupport
import Testing

@testable import RedisClient

@Suite("Redis commands against a real server")
struct CommandTests {
    @Test func stringsWithConditionsAndExpiry() async throws {
        try await TestRedis.withClient { (redis: RedisClient) async throws in
            #expect(try await redis.get("missing") == nil)
            #expect(try await redis.set("a", "1"))
            #expect(try await redis.get("a")?.text == "1")
            #expect(try await redis.set("a", "2", condition: .nx) == false)
            #expect(try await redis.get("a")?.text == "1")
            #expect(try await redis.set("b", "x", condition: .xx) == false)
            #expect(try await redis.exists("b") == false)
            #expect(try await redis.set("a", "3", condition: .xx))
            #expect(try await redis.set("lock", "me", condition: .nx, expiration: .seconds(100)))
            let ttl = try await redis.ttl("lock")
            #expect(ttl > 90 && ttl <= 100)
            #expect(try await redis.set("short", "v", expiration: .milliseconds(50_000)))
            let pttl = try await redis.pttl("short")
            #expect(pttl > 40_000 && pttl <= 50_000)
            #expect(try await redis.ttl("a") == -1)
            #expect(try await redis.ttl("none") == -2)
            // binary values round trip
            let blob: [UInt8] = [0, 255, 13, 10, 36, 42]
            try await redis.set("blob", blob)
            #expect(try await redis.get("blob") == blob)
            #expect(try await redis.del("a", "blob", "none") == 2)
            #expect(try await redis.exists("a") == false)
        }
    }

    @Test func counterAndExpire() async throws {
        try await TestRedis.withClient { (redis: RedisClient) async throws in
            #expect(try await redis.incr("n") == 1)
            #expect(try await redis.incrBy("n", 41) == 42)
            #expect(try await redis.incrBy("n", -2) == 40)
            #expect(try await redis.expire("n", seconds: 60))
            #expect(try await redis.expire("missing", seconds: 60) == false)
            let ttl = try await redis.ttl("n")
            #expect(ttl > 0 && ttl <= 60)
            #expect(try await redis.pexpire("n", milliseconds: 1))
            try await Task.sleep(for: .milliseconds(20))
            #expect(try await redis.exists("n") == false)
            try await redis.set("text", "abc")
            await #expect(throws: RedisError.self) { try await redis.incr("text") }
        }
    }

    @Test func hashes() async throws {
        try await TestRedis.withClient { (redis: RedisClient) async throws in
            #expect(try await redis.hset("h", [("name", "ada"), ("count", 1), ("bytes", [1, 2, 3] as [UInt8])]) == 3)
            #expect(try await redis.hset("h", [("name", "grace")]) == 0)
            #expect(try await redis.hget("h", "name")?.text == "grace")
            #expect(try await redis.hget("h", "none") == nil)
            #expect(try await redis.hincrby("h", "count", 9) == 10)
            let all = try await redis.hgetall("h")
            #expect(all.count == 3)
            #expect(all["count"]?.text == "10")
            #expect(all["bytes"] == [1, 2, 3])
            #expect(try await redis.hdel("h", "name", "none") == 1)
            #expect(try await redis.hgetall("h").keys.sorted() == ["bytes", "count"])
            #expect(try await redis.hgetall("nothing").isEmpty)
        }
    }

    @Test func sortedSets() async throws {
        try await TestRedis.withClient { (redis: RedisClient) async throws -> Void in
            let members: [(score: Double, member: any RESPArgument)] = [(1, "a"), (2.5, "b"), (10, "c"), (5, "d")]
            #expect(try await redis.zadd("z", members) == 4)
            #expect(try await redis.zadd("z", [(score: 3, member: "a")]) == 0)
            #expect(try await redis.zcard("z") == 4)
            #expect(try await redis.zscore("z", "a") == 3)
            #expect(try await redis.zscore("z", "none") == nil)
            #expect(try await redis.zrangeByScore("z", min: "-inf", max: "+inf").map(\.text) == ["b", "a", "d", "c"])
            #expect(try await redis.zrangeByScore("z", min: "(2.5", max: "5").map(\.text) == ["a", "d"])
            #expect(try await redis.zrangeByScore("z", min: "-inf", max: "+inf", limit: (1, 2)).map(\.text) == ["a", "d"])
            #expect(try await redis.zrem("z", ["a", "c", "none"]) == 2)
            #expect(try await redis.zcard("z") == 2)
        }
    }

    @Test func lists() async throws {
        try await TestRedis.withClient { (redis: RedisClient) async throws in
            #expect(try await redis.rpush("l", ["b", "c"]) == 2)
            #expect(try await redis.lpush("l", ["a"]) == 3)
            #expect(try await redis.llen("l") == 3)
            #expect(try await redis.lrange("l", 0, -1).map(\.text) == ["a", "b", "c"])
            #expect(try await redis.lpop("l")?.text == "a")
            #expect(try await redis.rpop("l")?.text == "c")
            #expect(try await redis.rpop("l")?.text == "b")
            #expect(try await redis.lpop("l") == nil)
            #expect(try await redis.lrange("l", 0, -1).isEmpty)
        }
    }

    @Test func keyPrefixIsAppliedByHelpersNotByRawCommands() async throws {
        try await TestRedis.withClient { (redis: RedisClient) async throws in
            let prefix = redis.configuration.keyPrefix
            #expect(redis.key("queue:ai") == prefix + "queue:ai")
            try await redis.set("k", "v")
            #expect(try await redis.send(RedisCommand("GET", prefix + "k")).string == "v")
            #expect(try await redis.send(RedisCommand("EXISTS", "k")).int == 0)
            _ = try await redis.send(RedisCommand("SET", prefix + "raw", "r"))
            #expect(try await redis.get("raw")?.text == "r")
        }
    }

    @Test func serverErrorsAreTyped() async throws {
        try await TestRedis.withClient { (redis: RedisClient) async throws in
            do {
                _ = try await redis.send(RedisCommand("NOSUCHCOMMAND", "x"))
                Issue.record("no error")
            } catch let RedisError.server(message) {
                #expect(message.hasPrefix("ERR"))
            }
            try await redis.set("s", "v")
            do {
                _ = try await redis.lpush("s", ["x"])
                Issue.record("no error")
            } catch let error as RedisError {
                #expect(error.serverErrorCode == "WRONGTYPE")
            }
            let replies = try await redis.pipeline([RedisCommand("PING"), RedisCommand("NOSUCHCOMMAND"), RedisCommand("ECHO", "x")])
            #expect(replies[0] == .simpleString("PONG"))
            #expect(replies[1].errorMessage?.hasPrefix("ERR") == true)
            #expect(replies[2].string == "x")
        }
    }

    @Test func streamsEndToEnd() async throws {
        try await TestRedis.withClient { (redis: RedisClient) async throws in
            #expect(try await redis.xgroupCreate("jobs", group: "workers", id: "0", mkstream: true))
            #expect(try await redis.xgroupCreate("jobs", group: "workers") == false)  // BUSYGROUP
            #expect(try await redis.xlen("jobs") == 0)

            let id1 = try await redis.xadd("jobs", fields: [("task", "one"), ("n", 1)])
            let id2 = try await redis.xadd("jobs", fields: [("task", "two"), ("n", 2)])
            let id3 = try await redis.xadd("jobs", fields: [("task", "three"), ("n", 3)], maxLength: .approximately(1000))
            #expect(try await redis.xlen("jobs") == 3)

            let range = try await redis.xrange("jobs")
            #expect(range.map(\.id) == [id1, id2, id3])
            #expect(range[0].string("task") == "one")
            #expect(range[1].orderedFields.map(\.name) == ["task", "n"])
            #expect(try await redis.xrange("jobs", start: id2, count: 1).map(\.id) == [id2])
            #expect(try await redis.xrevrange("jobs", count: 2).map(\.id) == [id3, id2])

            let batches = try await redis.xreadgroup(group: "workers", consumer: "c1", streams: [("jobs", ">")], count: 2)
            #expect(batches.count == 1)
            #expect(batches[0].stream == "jobs")  // without the prefix
            #expect(batches[0].entries.map(\.id) == [id1, id2])
            #expect(batches[0].entries[1].fields["task"]?.text == "two")

            let summary = try await redis.xpendingSummary("jobs", group: "workers")
            #expect(summary.count == 2)
            #expect(summary.smallestID == id1)
            #expect(summary.largestID == id2)
            #expect(summary.consumers.map(\.name) == ["c1"])
            #expect(summary.consumers.first?.count == 2)

            let pending = try await redis.xpending("jobs", group: "workers", count: 10)
            #expect(pending.map(\.id) == [id1, id2])
            #expect(pending.allSatisfy { $0.consumer == "c1" && $0.deliveries == 1 })
            #expect(try await redis.xpending("jobs", group: "workers", count: 10, consumer: "other").isEmpty)
            #expect(try await redis.xpending("jobs", group: "workers", count: 10, minIdle: .seconds(3600)).isEmpty)

            #expect(try await redis.xack("jobs", group: "workers", ids: [id1]) == 1)
            #expect(try await redis.xack("jobs", group: "workers", ids: [id1]) == 0)

            // id2 is pending for c1; c2 takes it over once idle long enough.
            try await Task.sleep(for: .milliseconds(30))
            let claimed = try await redis.xautoclaim("jobs", group: "workers", consumer: "c2", minIdle: .milliseconds(10), count: 10)
            #expect(claimed.entries.map(\.id) == [id2])
            #expect(claimed.next == "0-0")
            #expect(claimed.deleted.isEmpty)
            let afterClaim = try await redis.xpending("jobs", group: "workers", count: 10)
            #expect(afterClaim.first?.consumer == "c2")
            #expect(afterClaim.first?.deliveries == 2)

            // XCLAIM with JUSTID extends the claim without counting a delivery.
            let extended = try await redis.xclaim("jobs", group: "workers", consumer: "c2", minIdle: .zero, ids: [id2], justId: true)
            #expect(extended.map(\.id) == [id2])
            let full = try await redis.xclaim("jobs", group: "workers", consumer: "c3", minIdle: .zero, ids: [id2])
            #expect(full.first?.string("task") == "two")

            // A pending entry deleted from the stream is reported by XAUTOCLAIM as deleted.
            let rest = try await redis.xreadgroup(group: "workers", consumer: "c1", streams: [("jobs", ">")])
            #expect(rest.first?.entries.map(\.id) == [id3])
            #expect(try await redis.xdel("jobs", ids: [id3]) == 1)
            try await Task.sleep(for: .milliseconds(20))
            let gone = try await redis.xautoclaim("jobs", group: "workers", consumer: "c2", minIdle: .milliseconds(5), start: id3)
            #expect(gone.deleted == [id3])

            let info = try await redis.xinfoStream("jobs")
            #expect(info["length"]?.int == 2)
            #expect(info["groups"]?.int == 1)
            let groups = try await redis.xinfoGroups("jobs")
            #expect(groups.count == 1)
            #expect(groups.first?["name"]?.string == "workers")
            #expect(groups.first?["pending"]?.int == 1)

            // XREAD without a group, and trimming
            let read = try await redis.xread(streams: [("jobs", "0")], count: 10)
            #expect(read.first?.entries.map(\.id) == [id1, id2])
            for i in 0..<20 { try await redis.xadd("capped", fields: [("i", i)], maxLength: .exactly(5)) }
            #expect(try await redis.xlen("capped") == 5)
            #expect(try await redis.xgroupDestroy("jobs", group: "workers"))
        }
    }

    @Test func blockingReadsReturnEmptyWhenTheBlockRunsOut() async throws {
        try await TestRedis.withClient { (redis: RedisClient) async throws in
            try await redis.xgroupCreate("s", group: "g")
            let batches = try await redis.xreadgroup(
                group: "g", consumer: "c", streams: [("s", ">")], count: 1, block: .milliseconds(50))
            #expect(batches.isEmpty)
            let plain = try await redis.xread(streams: [("s", "$")], block: .milliseconds(50))
            #expect(plain.isEmpty)
        }
    }

    @Test func blockedXREADGROUPIsWokenByAnXADDFromAnotherConnection() async throws {
        try await TestRedis.withClient { (redis: RedisClient) async throws in
            try await redis.xgroupCreate("wake", group: "g")
            async let read = redis.xreadgroup(
                group: "g", consumer: "c", streams: [("wake", ">")], count: 10, block: .seconds(20))
            // Wait until the reader is blocked on the server, then add from the multiplexed pool.
            try await Self.waitUntilBlocked(in: "xreadgroup", redis)
            let id = try await redis.xadd("wake", fields: [("hello", "world")])
            let batches = try await read
            #expect(batches.first?.stream == "wake")
            #expect(batches.first?.entries.map(\.id) == [id])
            #expect(batches.first?.entries.first?.string("hello") == "world")
            // Ordinary commands kept working while the read was blocked.
            #expect(try await redis.xlen("wake") == 1)
        }
    }

    /// Waits (up to 2 s) until a client of this Redis is blocked in `command`.
    static func waitUntilBlocked(in command: String, _ redis: RedisClient) async throws {
        for _ in 0..<200 {
            let clients = try await redis.send(RedisCommand("CLIENT", "LIST", "TYPE", "normal")).string ?? ""
            if clients.split(separator: "\n").contains(where: { $0.contains("cmd=\(command) ") && $0.contains("flags=b") }) { return }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    @Test func blockedXREADIsWokenToo() async throws {
        try await TestRedis.withClient { (redis: RedisClient) async throws in
            let seed = try await redis.xadd("feed", fields: [("seed", "0")])
            // After the seed, not "$": the answer is the same whether Redis takes the read before
            // or after the XADD below; waiting for a blocked reader makes the first the usual case.
            let read = Task { try await redis.xread(streams: [("feed", seed)], block: .seconds(20)) }
            try await Self.waitUntilBlocked(in: "xread", redis)
            let id = try await redis.xadd("feed", fields: [("n", "1")])
            let batches = try await read.value
            #expect(batches.first?.entries.map(\.id) == [id])
        }
    }

    @Test func cancellingABlockedReadReturnsPromptly() async throws {
        try await TestRedis.withClient { (redis: RedisClient) async throws in
            try await redis.xgroupCreate("c", group: "g")
            let read = Task {
                try await redis.xreadgroup(group: "g", consumer: "c", streams: [("c", ">")], block: .seconds(60))
            }
            try await Task.sleep(for: .milliseconds(200))
            read.cancel()
            await #expect(throws: CancellationError.self) { try await read.value }
            // The pool still serves blocking reads afterwards.
            let again = try await redis.xreadgroup(group: "g", consumer: "c", streams: [("c", ">")], block: .milliseconds(10))
            #expect(again.isEmpty)
        }
    }

    @Test func scriptsRunByShaAndReloadAfterSCRIPTFLUSH() async throws {
        try await TestRedis.withPrivateServer { (redis: RedisClient) async throws in
            let script = RedisScript("redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCRBY', KEYS[2], ARGV[2])")
            #expect(try await redis.scriptLoad(script.source) == script.sha1)
            #expect(try await redis.evalScript(script, keys: ["value", "count"], args: ["v", 5]).int == 5)
            #expect(try await redis.get("value")?.text == "v")  // KEYS were prefixed
            // Another script unknown to the server: NOSCRIPT, then EVAL with the source.
            let fresh = RedisScript("return {KEYS[1], ARGV[1], \(Int.random(in: 0...1_000_000_000))}")
            let reply = try await redis.evalScript(fresh, keys: ["k"], args: ["a"])
            #expect(reply.array?.first?.string == redis.key("k"))
            #expect(reply.array?[1].string == "a")
            // The fallback cached the script again, so the next call is a plain EVALSHA.
            let exists = try await redis.send(RedisCommand("SCRIPT", "EXISTS", fresh.sha1))
            #expect(exists.array?.first?.int == 1)
            // After the server forgets every script the call still succeeds.
            _ = try await redis.send(RedisCommand("SCRIPT", "FLUSH"))
            #expect(try await redis.evalScript(script, keys: ["value", "count"], args: ["w", 1]).int == 6)
            #expect(try await redis.get("value")?.text == "w")
            // Errors raised by the script are server errors.
            let failing = RedisScript("return redis.error_reply('BOOM it failed')")
            await #expect(throws: RedisError.server("BOOM it failed")) {
                try await redis.evalScript(failing, keys: [], args: [])
            }
        }
    }

    @Test func blockingListPopOnALeasedConnection() async throws {
        try await TestRedis.withClient { (redis: RedisClient) async throws in
            let listKey = redis.key("inbox")
            let pop = Task {
                try await redis.withBlockingConnection { connection in
                    try await connection.send(RedisCommand("BLPOP", listKey, 20))
                }
            }
            try await Task.sleep(for: .milliseconds(100))
            #expect(try await redis.rpush("inbox", ["letter"]) == 1)
            let reply = try await pop.value
            #expect(reply.array?.map { $0.string ?? "" } == [listKey, "letter"])
        }
    }

    @Test func pipelinedMULTIEXECIsATransaction() async throws {
        try await TestRedis.withClient { (redis: RedisClient) async throws in
            let replies = try await redis.pipeline([
                RedisCommand("MULTI"),
                RedisCommand("INCR", redis.key("a")),
                RedisCommand("INCRBY", redis.key("a"), 10),
                RedisCommand("EXEC"),
            ])
            #expect(replies[0] == .simpleString("OK"))
            #expect(replies[1] == .simpleString("QUEUED"))
            #expect(replies[3] == .array([.integer(1), .integer(11)]))
        }
    }

    @Test func publishCountsReceivers() async throws {
        try await TestRedis.withClient { (redis: RedisClient) async throws in
            #expect(try await redis.publish("nobody", "x") == 0)
        }
    }
}
