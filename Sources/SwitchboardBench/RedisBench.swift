import Foundation
import Logging
import NIOCore
import NIOPosix
import RedisClient

/// `switchboard-bench redis --url URL --ops N [--depth 16] [--clients 50] [--batch 10000] [--pool 4] [--mode nio|blocking]`
///
/// Pipelined SET and XADD throughput of RedisClient, in the shapes `redis-benchmark -P 16` uses
/// (many clients, each with 16 commands in flight) plus one caller sending big batches.
/// `--mode blocking` measures the alternative design instead: blocking hiredis contexts on a
/// thread pool (see RedisBlockingBaseline.swift). Lines starting with `RESULT` are for
/// scripts/bench/redis.sh.
enum RedisBench {
    struct Options {
        var url = "redis://127.0.0.1:6380/0"
        var ops = 200_000
        var depth = 16
        var clients = 50
        var batch = 10_000
        var pool = 4
        var mode = "nio"
    }

    static func run(_ arguments: [String]) async throws {
        let options = try parse(arguments)
        if options.mode == "blocking" { return try await runBlocking(options) }
        var configuration = try RedisConfiguration(url: options.url)
        configuration.keyPrefix = "sbbench:\(UInt32.random(in: 0...UInt32.max)):"
        configuration.poolSize = options.pool
        var logger = Logger(label: "redis-bench")
        logger.logLevel = .warning
        let redis = RedisClient(configuration: configuration, logger: logger)
        try await redis.ping()

        let value = String(repeating: "x", count: 3)  // redis-benchmark's default 3-byte payload
        let setKey = redis.key("key")
        let stream = redis.key("stream")
        let set = { (_: Int) in RedisCommand("SET", setKey, value) }
        let xadd = { (_: Int) in RedisCommand("XADD", stream, "MAXLEN", "~", 100_000, "*", "field", value) }

        print("RedisClient over \(configuration.host):\(configuration.port), \(options.ops) ops per run, pool \(options.pool)")
        for (name, make) in [("SET", set), ("XADD", xadd)] {
            // Warm up the connections and the server.
            _ = try await pipelined(redis, ops: min(options.ops, 20_000), depth: options.depth, clients: options.clients, make: make)
            let concurrent = try await pipelined(redis, ops: options.ops, depth: options.depth, clients: options.clients, make: make)
            report(name, "depth \(options.depth) x \(options.clients) clients", key: "\(name.lowercased())_p\(options.depth)", rate: concurrent)
            let single = try await pipelined(redis, ops: options.ops, depth: options.depth, clients: 1, make: make)
            report(name, "depth \(options.depth) x 1 caller", key: "\(name.lowercased())_p\(options.depth)_single", rate: single)
            let batch = try await pipelined(redis, ops: options.ops, depth: options.batch, clients: 1, make: make)
            report(name, "batch \(options.batch) x 1 caller", key: "\(name.lowercased())_batch", rate: batch)
        }
        _ = try await redis.del("key", "stream")
        await redis.close()
    }

    /// `clients` tasks each send `depth` commands per pipeline() call until `ops` were sent; ops/s.
    static func pipelined(
        _ redis: RedisClient, ops: Int, depth: Int, clients: Int, make: (Int) -> RedisCommand
    ) async throws -> Double {
        let rounds = max(1, ops / (depth * clients))
        let commands = (0..<depth).map(make)
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<clients {
                group.addTask {
                    for _ in 0..<rounds {
                        let replies = try await redis.pipeline(commands)
                        if let error = replies.first(where: { $0.errorMessage != nil }) {
                            throw RedisError.server(error.errorMessage ?? "")
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Double(rounds * depth * clients) / seconds
    }

    /// The same runs over blocking hiredis contexts, one per thread of an NIOThreadPool.
    static func runBlocking(_ options: Options) async throws {
        let configuration = try RedisConfiguration(url: options.url)
        let prefix = "sbbench:\(UInt32.random(in: 0...UInt32.max)):"
        let pool = try await BlockingHiredisPool(
            host: configuration.host, port: configuration.port, password: configuration.password,
            database: configuration.database, connections: options.pool)
        let value = "xxx"
        let set = BlockingHiredisPool.CArguments(RedisCommand("SET", prefix + "key", value).arguments)
        let xadd = BlockingHiredisPool.CArguments(
            RedisCommand("XADD", prefix + "stream", "MAXLEN", "~", 100_000, "*", "field", value).arguments)
        print("blocking hiredis contexts on \(options.pool) threads, \(configuration.host):\(configuration.port), \(options.ops) ops per run")
        for (name, command) in [("SET", set), ("XADD", xadd)] {
            _ = try await blockingRun(pool, command, ops: min(options.ops, 20_000), depth: options.depth, clients: options.clients)
            let concurrent = try await blockingRun(pool, command, ops: options.ops, depth: options.depth, clients: options.clients)
            report(name, "depth \(options.depth) x \(options.clients) clients", key: "blocking_\(name.lowercased())_p\(options.depth)", rate: concurrent)
            let single = try await blockingRun(pool, command, ops: options.ops, depth: options.depth, clients: 1)
            report(name, "depth \(options.depth) x 1 caller", key: "blocking_\(name.lowercased())_p\(options.depth)_single", rate: single)
            let batch = try await blockingRun(pool, command, ops: options.ops, depth: options.batch, clients: 1)
            report(name, "batch \(options.batch) x 1 caller", key: "blocking_\(name.lowercased())_batch", rate: batch)
        }
        let cleanup = BlockingHiredisPool.CArguments(RedisCommand("DEL", prefix + "key", prefix + "stream").arguments)
        try await pool.pipeline(cleanup, depth: 1)
        try await pool.shutdown()
    }

    static func blockingRun(
        _ pool: BlockingHiredisPool, _ command: BlockingHiredisPool.CArguments, ops: Int, depth: Int, clients: Int
    ) async throws -> Double {
        let rounds = max(1, ops / (depth * clients))
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<clients {
                group.addTask {
                    for _ in 0..<rounds { try await pool.pipeline(command, depth: depth) }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Double(rounds * depth * clients) / seconds
    }

    static func report(_ name: String, _ shape: String, key: String, rate: Double) {
        let padded = (name + " " + shape).padding(toLength: 36, withPad: " ", startingAt: 0)
        print("\(padded) \(Int(rate.rounded())) ops/s")
        print("RESULT \(key) \(Int(rate.rounded()))")
    }

    static func parse(_ arguments: [String]) throws -> Options {
        var options = Options()
        var iterator = arguments.makeIterator()
        while let flag = iterator.next() {
            guard let value = iterator.next() else { throw BenchUsage("missing value for \(flag)") }
            switch flag {
            case "--url": options.url = value
            case "--ops": options.ops = try int(value, flag)
            case "--depth": options.depth = try int(value, flag)
            case "--clients": options.clients = try int(value, flag)
            case "--batch": options.batch = try int(value, flag)
            case "--pool": options.pool = try int(value, flag)
            case "--mode":
                guard value == "nio" || value == "blocking" else { throw BenchUsage("--mode is nio or blocking") }
                options.mode = value
            default: throw BenchUsage("unknown option \(flag)")
            }
        }
        return options
    }

    static func int(_ text: String, _ flag: String) throws -> Int {
        guard let n = Int(text), n > 0 else { throw BenchUsage("\(flag) needs a positive integer, got \(text)") }
        return n
    }
}

struct BenchUsage: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = "usage: switchboard-bench redis [--url URL] [--ops N] [--depth 16] [--clients 50] [--batch 10000] [--pool 4] [--mode nio|blocking]: \(description)" }
}
