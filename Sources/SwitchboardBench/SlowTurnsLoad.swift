// `switchboard-bench slow-turns`: turns in flight per worker with a slow provider (issue 22's
// worker question): a responder that waits --first-token seconds, then streams --tokens chunks at
// --token-rate per second. For each --concurrency, a fresh key prefix, an api node (submissions
// over HTTP, open loop at --rate turns/s for --seconds) and one WorkerService with that many
// slots, in this process; then turns/s completed, the queue wait (submit -> `started`) and the
// process's CPU, RSS and Redis connections. All loops are bounded in time.
import AIProviders
import APIServer
import Channels
import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import Pipeline
import Queue
import RedisClient
import Storage
import Turns

enum SlowTurnsLoad {
    struct SlowResponder: TurnResponder {
        var firstToken: Duration
        var tokens: Int
        var tokenRate: Double

        var earlierMessages: Int { 0 }

        func respond(to request: TurnRequest, events: any TurnEventSink) async throws -> TurnOutcome {
            try await Task.sleep(for: firstToken)
            var text = ""
            for i in 0..<tokens {
                let token = "w\(i) "
                text += token
                try await events.emit(.chunk(token))
                try await Task.sleep(for: .seconds(1 / tokenRate))
            }
            return TurnOutcome(
                reply: text, classification: Classification(topic: "bench", source: .fallback), provider: "slow", model: "slow-1",
                usage: TokenUsage(promptTokens: 1, completionTokens: tokens), tasks: [:])
        }
    }

    static func run(_ arguments: [String]) async throws {
        let options = Options(arguments)
        guard let redisURL = options["redis"], let databaseURL = options["database"] else {
            throw SSEStreamsLoad.BenchError(
                "usage: switchboard-bench slow-turns --redis URL --database URL [--concurrency 8,64,256] [--rate 20] [--seconds 20] [--first-token 2] [--tokens 40] [--token-rate 20]")
        }
        let concurrencies = (options["concurrency"] ?? "8,64,256").split(separator: ",").compactMap { Int($0) }
        let rate = Double(options["rate"] ?? "20") ?? 20
        let seconds = options.int("seconds", 20)
        let responder = SlowResponder(
            firstToken: .seconds(Double(options["first-token"] ?? "2") ?? 2), tokens: options.int("tokens", 40),
            tokenRate: Double(options["token-rate"] ?? "20") ?? 20)
        var logger = Logger(label: "switchboard-bench.slow-turns")
        logger.logLevel = .error
        try await BenchDatabase.with(url: databaseURL, poolSize: 16, label: "slow_", logger: logger) { stores in
            let accounts = Accounts(stores: stores)
            _ = try await accounts.createUser(email: "slow@example.com")
            let key = try await accounts.createAPIKey(userEmail: "slow@example.com").secret
            print("== slow provider: \(responder.firstToken) to the first token, \(responder.tokens) tokens at \(responder.tokenRate)/s; \(rate) turns/s for \(seconds) s; database pool 16")
            for concurrency in concurrencies {
                try await step(
                    concurrency: concurrency, redisURL: redisURL, stores: stores, key: key, responder: responder, rate: rate,
                    seconds: seconds, logger: logger)
            }
        }
    }

    static func step(
        concurrency: Int, redisURL: String, stores: Stores, key: String, responder: SlowResponder, rate: Double, seconds: Int,
        logger: Logger
    ) async throws {
        var redisConfiguration = try RedisConfiguration(url: redisURL)
        redisConfiguration.keyPrefix = "sbbench:slow:\(UInt32.random(in: 0...UInt32.max)):"
        let redis = RedisClient(configuration: redisConfiguration, logger: logger)
        let jobs = JobQueue(client: redis, logger: logger)
        let dependencies = APIDependencies(redis: redis, stores: stores, jobs: jobs, limits: .disabled)
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let app = APIApplication.build(host: "127.0.0.1", port: 0, dependencies: dependencies, logger: logger) { channel in
            portContinuation.yield(channel.localAddress?.port ?? 0)
        }
        let server = Task { try await app.runService(gracefulShutdownSignals: []) }
        var portIterator = ports.makeAsyncIterator()
        guard let port = await portIterator.next(), port > 0 else { throw SSEStreamsLoad.BenchError("the api did not start") }

        var registry = JobRegistry()
        PipelineJobs.register(in: &registry, responder: responder, stores: stores, redis: redis)
        let worker = try WorkerService(
            client: redis, registry: registry,
            configuration: WorkerConfiguration(
                workerID: "slow-\(concurrency)", queues: [Turns.queue, Deliveries.queue], concurrency: concurrency, healthPort: 0),
            logger: logger)
        let workerTask = Task { try await worker.run() }

        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let base = "http://127.0.0.1:\(port)"
        let cpuBefore = GatewayBench.cpuSeconds(pid: nil)
        let start = Date()
        // Open loop: one submission every 1/rate s, each timed from when it was due.
        let submitted = try await withThrowingTaskGroup(of: (Int64, Double).self) { group in
            let total = Int(rate * Double(seconds))
            for i in 0..<total {
                let due = start.addingTimeInterval(Double(i) / rate)
                let wait = due.timeIntervalSinceNow
                if wait > 0 { try await Task.sleep(for: .seconds(wait)) }
                group.addTask {
                    var request = HTTPClientRequest(url: base + "/api/v1/messages")
                    request.method = .POST
                    request.headers.add(name: "Authorization", value: "Bearer \(key)")
                    request.headers.add(name: "Content-Type", value: "application/json")
                    request.body = .bytes(ByteBuffer(string: #"{"content":"slow \#(i)"}"#))
                    let response = try await client.execute(request, timeout: .seconds(30))
                    let body = try await response.body.collect(upTo: 1 << 16)
                    guard let json = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
                        let id = (json["messageId"] as? NSNumber)?.int64Value
                    else { throw SSEStreamsLoad.BenchError("submit failed: \(String(buffer: body))") }
                    return (id, due.timeIntervalSince1970 * 1000)
                }
            }
            var all: [(Int64, Double)] = []
            for try await item in group { all.append(item) }
            return all
        }
        // Let the turns submitted finish, at most 30 s more.
        let reader = TurnStreamReader(redis: redis)
        var peakRSS = GatewayBench.residentKB(pid: Int(getpid()))
        var peakRedisClients = 0
        var finished = 0
        for _ in 0..<60 {
            peakRSS = max(peakRSS, GatewayBench.residentKB(pid: Int(getpid())))
            if let info = try? await redis.send(RedisCommand("INFO", "clients")).string,
                let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("connected_clients:") })
            {
                peakRedisClients = max(peakRedisClients, Int(line.dropFirst("connected_clients:".count)) ?? 0)
            }
            finished = 0
            for (id, _) in submitted {
                if try await reader.last(messageID: id)?.isFinal == true { finished += 1 }
            }
            if finished == submitted.count { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        let cpu = GatewayBench.cpuSeconds(pid: nil) - cpuBefore
        let elapsed = Date().timeIntervalSince(start)
        var waits: [Double] = []
        var lastEnd = 0.0
        for (id, due) in submitted {
            let entries = try await reader.all(messageID: id)
            if let first = entries.first, let ms = Double(first.id.split(separator: "-")[0]) { waits.append(ms - due) }
            if let last = entries.last, last.isFinal, let ms = Double(last.id.split(separator: "-")[0]) { lastEnd = max(lastEnd, ms) }
        }
        waits.sort()
        func p(_ q: Double) -> Double { waits.isEmpty ? .nan : waits[min(waits.count - 1, Int(Double(waits.count) * q))] }
        let firstDue = submitted.map(\.1).min() ?? 0
        let span = max(0.001, (lastEnd - firstDue) / 1000)
        print(String(
            format: "concurrency=%d submitted=%d finished=%d (in %.0fs) turns_per_s=%.1f started=%d queue_wait_p50=%.0fms p99=%.0fms process_cpu=%.0f%% peak_rss=%dMB peak_redis_clients=%d",
            concurrency, submitted.count, finished, elapsed, Double(finished) / span, waits.count, p(0.5), p(0.99), cpu / elapsed * 100,
            peakRSS / 1024, peakRedisClients))
        worker.beginStopping()
        workerTask.cancel()
        _ = await workerTask.result
        server.cancel()
        _ = await server.result
        try? await client.shutdown()
        if let keys = try? await redis.send(RedisCommand("KEYS", redisConfiguration.keyPrefix + "*")).array {
            let names = keys.compactMap(\.bytes)
            if !names.isEmpty { _ = try? await redis.send(RedisCommand("DEL", arguments: names)) }
        }
        await redis.close()
    }
}
