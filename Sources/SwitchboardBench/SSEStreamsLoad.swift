// `switchboard-bench sse`: many open turn streams (`GET /api/v1/messages/{id}/events`) on one api
// node (issue 22). Two processes, so the api's memory is measured alone:
//   sse serve  an api node over real Redis and MariaDB (a throw-away database and key prefix) with
//              --streams queued messages; writes a plan file (port, key, prefix, message ids, pid)
//              and runs until that file is removed;
//   sse load   opens the streams (raw NIO connections on one event loop thread), writes token
//              streams into --active of the turns with XADD as the worker does (a chunk carrying
//              its send time), and prints event -> client latency, Redis's connected/blocked
//              clients and the api's RSS at --active open streams, then at --streams.
// scripts/bench/sse.sh runs both. All loops are bounded in count and time.
import APIServer
import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Queue
import RedisClient
import Storage
import Synchronization
import Turns

enum SSEStreamsLoad {
    static let usage = """
        usage: switchboard-bench sse serve --redis URL --database URL --streams N --plan FILE [--heartbeat 15] [--cold-block-ms 30000]
               switchboard-bench sse serve --bare --streams N --plan FILE
               switchboard-bench sse load --plan FILE --redis URL [--active 100] [--streams 10000] [--rate 25]
                   [--seconds 20] [--settle 12]
        """

    struct BenchError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    struct Plan: Codable {
        var port: Int
        var key: String
        var prefix: String
        var pid: Int
        var messages: [Int64]
    }

    static func run(_ arguments: [String]) async throws {
        let options = Options(Array(arguments.dropFirst()))
        switch arguments.first {
        case "serve": try await serve(options)
        case "load": try await load(options)
        default: throw BenchError(usage)
        }
    }

    // MARK: serve

    static func serve(_ options: Options) async throws {
        if options["bare"] != nil, let planPath = options["plan"] {
            var logger = Logger(label: "switchboard-bench.sse")
            logger.logLevel = .error
            try await serveBare(streams: options.int("streams", 10_000), planPath: planPath, logger: logger)
            return
        }
        guard let planPath = options["plan"], let redisURL = options["redis"], let databaseURL = options["database"] else {
            throw BenchError(usage)
        }
        let streams = options.int("streams", 10_000)
        var logger = Logger(label: "switchboard-bench.sse")
        logger.logLevel = .error
        var redisConfiguration = try RedisConfiguration(url: redisURL)
        redisConfiguration.keyPrefix = "sbbench:\(UInt32.random(in: 0...UInt32.max)):"
        let redis = RedisClient(configuration: redisConfiguration, logger: logger)
        let outcome: Result<Void, any Error>
        do {
            try await BenchDatabase.with(url: databaseURL, poolSize: 8, label: "sse_", logger: logger) { stores in
                let heartbeat = Duration.seconds(options.int("heartbeat", 15))
                let hub = TurnStreamHubSettings(coldBlock: .milliseconds(options.int("cold-block-ms", 30_000)))
                try await serve(redis: redis, stores: stores, streams: streams, heartbeat: heartbeat, hub: hub, planPath: planPath, logger: logger)
            }
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        await redis.close()
        try? FileManager.default.removeItem(atPath: planPath)
        try outcome.get()
    }

    static func serve(redis: RedisClient, stores: Stores, streams: Int, heartbeat: Duration, hub: TurnStreamHubSettings, planPath: String, logger: Logger) async throws {
        let accounts = Accounts(stores: stores)
        _ = try await accounts.createUser(email: "sse-bench@example.com")
        let key = try await accounts.createAPIKey(userEmail: "sse-bench@example.com").secret
        let dependencies = APIDependencies(
            redis: redis, stores: stores, jobs: JobQueue(client: redis, logger: logger), settings: APISettings(heartbeatInterval: heartbeat, streamHub: hub),
            limits: .disabled)
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let app = APIApplication.build(host: "127.0.0.1", port: 0, dependencies: dependencies, logger: logger) { channel in
            portContinuation.yield(channel.localAddress?.port ?? 0)
        }
        let server = Task { try await app.runService(gracefulShutdownSignals: []) }
        defer { server.cancel() }
        var portIterator = ports.makeAsyncIterator()
        guard let port = await portIterator.next(), port > 0 else { throw BenchError("the api did not start") }

        // Queued messages (nobody works on them): their streams stay open until the load ends.
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let base = "http://127.0.0.1:\(port)"
        var messages: [Int64] = []
        messages.reserveCapacity(streams)
        try await withThrowingTaskGroup(of: Int64.self) { group in
            var next = 0
            func add() {
                let index = next
                next += 1
                group.addTask {
                    var request = HTTPClientRequest(url: base + "/api/v1/messages")
                    request.method = .POST
                    request.headers.add(name: "Authorization", value: "Bearer \(key)")
                    request.headers.add(name: "Content-Type", value: "application/json")
                    request.body = .bytes(ByteBuffer(string: #"{"content":"sse bench \#(index)"}"#))
                    let response = try await client.execute(request, timeout: .seconds(30))
                    let body = try await response.body.collect(upTo: 1 << 16)
                    guard let json = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
                        let id = (json["messageId"] as? NSNumber)?.int64Value
                    else { throw BenchError("submit failed: \(String(buffer: body))") }
                    return id
                }
            }
            for _ in 0..<min(32, streams) { add() }
            while let id = try await group.next() {
                messages.append(id)
                if next < streams { add() }
            }
        }
        try await client.shutdown()
        let plan = Plan(port: port, key: key, prefix: redis.configuration.keyPrefix, pid: Int(getpid()), messages: messages)
        let temporary = planPath + ".tmp"
        try JSONEncoder().encode(plan).write(to: URL(fileURLWithPath: temporary))
        try FileManager.default.moveItem(atPath: temporary, toPath: planPath)
        // Runs until the load generator (or the script) removes the plan; at most an hour.
        for _ in 0..<7_200 where FileManager.default.fileExists(atPath: planPath) {
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    /// The floor under the api's memory per stream: the same Hummingbird server and route shape,
    /// but the response only writes `retry:` and waits (no authentication, hub, Redis or database).
    static func serveBare(streams: Int, planPath: String, logger: Logger) async throws {
        let router = Router()
        router.get("/api/v1/messages/:id/events") { _, _ -> Response in
            Response(status: .ok, body: ResponseBody { writer in
                try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
                try await Task.sleep(for: .seconds(3_600))
                try await writer.finish(nil)
            })
        }
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { portContinuation.yield($0.localAddress?.port ?? 0) }, logger: logger)
        let server = Task { try await app.runService(gracefulShutdownSignals: []) }
        defer { server.cancel() }
        var portIterator = ports.makeAsyncIterator()
        guard let port = await portIterator.next(), port > 0 else { throw BenchError("the server did not start") }
        let plan = Plan(port: port, key: "bare", prefix: "sbbench:bare:", pid: Int(getpid()), messages: (1...Int64(streams)).map { $0 })
        let temporary = planPath + ".tmp"
        try JSONEncoder().encode(plan).write(to: URL(fileURLWithPath: temporary))
        try FileManager.default.moveItem(atPath: temporary, toPath: planPath)
        for _ in 0..<7_200 where FileManager.default.fileExists(atPath: planPath) {
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    // MARK: load

    /// What every connection reports: opened streams and the latencies of token chunks.
    final class Collector: Sendable {
        struct State {
            var opened = 0
            var failed = 0
            var recording = false
            var latencies: [UInt64] = []
        }
        let state = Mutex(State())

        func record(_ sent: UInt64, _ now: UInt64) {
            state.withLock { state in
                if state.recording, now >= sent { state.latencies.append(now - sent) }
            }
        }
    }

    /// One SSE connection: sends the GET, counts the 200, parses `data:` lines for `"text":"t<ns>"`.
    final class StreamHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let request: String
        let collector: Collector
        var opened = false
        var line: [UInt8] = []

        init(request: String, collector: Collector) {
            self.request = request
            self.collector = collector
        }

        func channelActive(context: ChannelHandlerContext) {
            context.writeAndFlush(NIOAny(ByteBuffer(string: request)), promise: nil)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            let now = DispatchTime.now().uptimeNanoseconds
            for byte in buffer.readableBytesView {
                if byte == UInt8(ascii: "\n") {
                    handle(line, now: now)
                    line.removeAll(keepingCapacity: true)
                } else if line.count < 512 {
                    line.append(byte)
                }
            }
        }

        private func handle(_ line: [UInt8], now: UInt64) {
            if !opened {
                if line.starts(with: Array("HTTP/1.1 200".utf8)) {
                    opened = true
                    collector.state.withLock { $0.opened += 1 }
                } else if line.starts(with: Array("HTTP/1.1".utf8)) {
                    collector.state.withLock { $0.failed += 1 }
                }
                return
            }
            // data: {"text":"t123456789"}
            let marker = Array(#""text":"t"#.utf8)
            guard line.count > marker.count + 6, line.starts(with: Array("data: ".utf8)) else { return }
            let body = line.dropFirst(6)
            guard let start = body.firstRange(of: marker)?.upperBound else { return }
            var value: UInt64 = 0
            var index = start
            while index < body.endIndex, body[index] >= 48, body[index] <= 57 {
                value = value * 10 + UInt64(body[index] - 48)
                index = body.index(after: index)
            }
            if value > 0 { collector.record(value, now) }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }

    static func load(_ options: Options) async throws {
        guard let planPath = options["plan"], let redisURL = options["redis"] else { throw BenchError(usage) }
        let plan = try JSONDecoder().decode(Plan.self, from: Data(contentsOf: URL(fileURLWithPath: planPath)))
        let active = min(options.int("active", 100), plan.messages.count)
        let total = min(options.int("streams", plan.messages.count), plan.messages.count)
        let rate = Double(options["rate"] ?? "25") ?? 25
        let window = options.int("seconds", 20)
        let settle = options.int("settle", 12)
        var logger = Logger(label: "switchboard-bench.sse-load")
        logger.logLevel = .error
        var configuration = try RedisConfiguration(url: redisURL)
        configuration.keyPrefix = plan.prefix
        configuration.poolSize = 1  // so Redis's client count minus one is the api's
        let redis = RedisClient(configuration: configuration, logger: logger)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let collector = Collector()
        var channels: [any Channel] = []

        func open(_ ids: ArraySlice<Int64>) async throws {
            let target = collector.state.withLock { $0.opened } + ids.count
            var index = ids.startIndex
            while index < ids.endIndex {
                // At most 256 connections being set up at once.
                let end = min(index + 256, ids.endIndex)
                let waitFor = collector.state.withLock { $0.opened + $0.failed } + (end - index)
                for id in ids[index..<end] {
                    let request = "GET /api/v1/messages/\(id)/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(plan.key)\r\nAccept: text/event-stream\r\n\r\n"
                    let channel = try await ClientBootstrap(group: group)
                        .channelInitializer { channel in
                            channel.eventLoop.makeCompletedFuture {
                                try channel.pipeline.syncOperations.addHandler(StreamHandler(request: request, collector: collector))
                            }
                        }
                        .connect(host: "127.0.0.1", port: plan.port).get()
                    channels.append(channel)
                }
                for _ in 0..<600 where collector.state.withLock({ $0.opened + $0.failed }) < waitFor {
                    try await Task.sleep(for: .milliseconds(50))
                }
                index = end
            }
            let (opened, failed) = collector.state.withLock { ($0.opened, $0.failed) }
            if opened < target { throw BenchError("only \(opened) of \(target) streams opened (\(failed) refused)") }
        }

        func clients() async throws -> (connected: Int, blocked: Int) {
            let info = try await redis.send(RedisCommand("INFO", "clients")).string ?? ""
            func field(_ name: String) -> Int {
                info.split(whereSeparator: \.isNewline).first { $0.hasPrefix(name + ":") }
                    .flatMap { Int($0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces)) } ?? -1
            }
            return (field("connected_clients"), field("blocked_clients"))
        }

        func redisStats() async throws -> (cpu: Double, xreadCalls: Int, xreadMicros: Int) {
            let cpuInfo = try await redis.send(RedisCommand("INFO", "cpu")).string ?? ""
            let stats = try await redis.send(RedisCommand("INFO", "commandstats")).string ?? ""
            var cpu = 0.0
            for line in cpuInfo.split(whereSeparator: \.isNewline) where line.hasPrefix("used_cpu_user:") || line.hasPrefix("used_cpu_sys:") {
                cpu += Double(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
            }
            var calls = 0
            var micros = 0
            if let line = stats.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_xread:") }) {
                for part in line.dropFirst("cmdstat_xread:".count).split(separator: ",") {
                    let pair = part.split(separator: "=")
                    if pair.count == 2, pair[0] == "calls" { calls = Int(pair[1]) ?? 0 }
                    if pair.count == 2, pair[0] == "usec" { micros = Int(pair[1]) ?? 0 }
                }
            }
            return (cpu, calls, micros)
        }

        func measure(_ label: String, streams: Int, rssBase: Int) async throws -> (p50: Double, p99: Double) {
            let cpuBefore = GatewayBench.cpuSeconds(pid: plan.pid)
            let redisBefore = try await redisStats()
            collector.state.withLock {
                $0.latencies = []
                $0.recording = true
            }
            try await Task.sleep(for: .seconds(window))
            let latencies = collector.state.withLock { state -> [UInt64] in
                state.recording = false
                return state.latencies.sorted()
            }
            let cpu = GatewayBench.cpuSeconds(pid: plan.pid) - cpuBefore
            let redisAfter = try await redisStats()
            let xreads = redisAfter.xreadCalls - redisBefore.xreadCalls
            let counts = try await clients()
            let rss = GatewayBench.residentKB(pid: plan.pid)
            func ms(_ p: Double) -> Double {
                latencies.isEmpty ? .nan : Double(latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]) / 1e6
            }
            let perStream = streams > 0 ? Double(rss - rssBase) * 1024 / Double(streams) : 0
            print(String(
                format: "%@: open_streams=%d events=%d latency_p50=%.2fms p99=%.2fms max=%.2fms redis_connected_clients=%d (api %d, this load 1) redis_blocked_clients=%d api_rss=%dKB api_rss_per_stream_since_start=%.0fB api_cpu=%.0f%%",
                label, streams, latencies.count, ms(0.5), ms(0.99), ms(1.0), counts.connected, counts.connected - 1, counts.blocked, rss,
                perStream, cpu / Double(window) * 100))
            print(String(
                format: "%@: redis_cpu=%.0f%% xread_calls=%d (%.0f/s) redis_usec_per_xread=%.0f",
                label, (redisAfter.cpu - redisBefore.cpu) / Double(window) * 100, xreads, Double(xreads) / Double(window),
                xreads > 0 ? Double(redisAfter.xreadMicros - redisBefore.xreadMicros) / Double(xreads) : 0))
            return (ms(0.5), ms(0.99))
        }

        // The api before any stream (after the submissions).
        let rssStart = GatewayBench.residentKB(pid: plan.pid)
        let start = try await clients()
        print("start: api_rss=\(rssStart)KB redis_connected_clients=\(start.connected) redis_blocked_clients=\(start.blocked)")

        try await open(plan.messages[0..<active])
        // Token streams into the active turns, as the worker writes them (XADD + PEXPIRE).
        let writers = Task {
            await withTaskGroup(of: Void.self) { tasks in
                for (i, id) in plan.messages[0..<active].enumerated() {
                    tasks.addTask {
                        let writer = TurnStreamWriter(redis: redis, messageID: id)
                        let interval = Duration.seconds(1 / rate)
                        try? await Task.sleep(for: interval * (Double(i) / Double(max(1, active))))
                        var next = ContinuousClock.now
                        while !Task.isCancelled {
                            _ = try? await writer.append(.chunk("t\(DispatchTime.now().uptimeNanoseconds)"))
                            next += interval
                            try? await Task.sleep(until: next, clock: .continuous)
                        }
                    }
                }
            }
        }
        try await Task.sleep(for: .seconds(3))
        let small = try await measure("at \(active) open streams", streams: active, rssBase: rssStart)
        let rssSmall = GatewayBench.residentKB(pid: plan.pid)

        let opening = ContinuousClock.now
        try await open(plan.messages[active..<total])
        print(String(format: "opened %d more streams in %.1fs; settling %ds (idle turns move to the cold reader)",
                     total - active, Double((ContinuousClock.now - opening).components.seconds), settle))
        try await Task.sleep(for: .seconds(settle))
        let large = try await measure("at \(total) open streams", streams: total, rssBase: rssStart)
        let rssLarge = GatewayBench.residentKB(pid: plan.pid)
        print(String(
            format: "result: api_rss_per_added_stream=%.0fB (%d->%dKB for %d streams) p99_ratio=%.2f (goal <= 1.5) p50_ratio=%.2f",
            Double(rssLarge - rssSmall) * 1024 / Double(max(1, total - active)), rssSmall, rssLarge, total - active,
            large.p99 / small.p99, large.p50 / small.p50))

        writers.cancel()
        _ = await writers.value
        for channel in channels { channel.close(promise: nil) }
        try? await Task.sleep(for: .milliseconds(500))
        try? await group.shutdownGracefully()
        await redis.close()
    }
}
