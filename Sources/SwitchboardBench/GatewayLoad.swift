import Foundation
import Gateway
import Logging
import NIOCore
import RedisClient
import HummingbirdWSClient
import ServiceLifecycle
import Synchronization
import UnixSignals

/// `switchboard-bench gateway serve|idle|fanout|throughput`: a development server for the interop
/// tests and the load generators behind scripts/bench/gateway.sh.
enum GatewayLoad {
    static func run(_ arguments: [String]) async throws {
        guard let mode = arguments.first else { throw GatewayLoadError.usage }
        let options = Options(Array(arguments.dropFirst()))
        switch mode {
        case "serve": try await serve(options)
        case "idle": try await GatewayBench.idle(options)
        case "fanout": try await GatewayBench.fanout(options)
        case "throughput": try await GatewayBench.throughput(options)
        default: throw GatewayLoadError.usage
        }
    }

    /// Runs a gateway: `--port P --host H --redis URL --config JSON` (JSON is the `gateway:` section;
    /// also read from SB_GATEWAY_CONFIG_JSON, SB_REDIS_URL and the SB_GATEWAY_* overrides).
    static func serve(_ options: Options) async throws {
        var configuration = GatewayConfiguration()
        if let json = options["config"] ?? ProcessInfo.processInfo.environment["SB_GATEWAY_CONFIG_JSON"], !json.isEmpty {
            configuration = try JSONDecoder().decode(GatewayConfiguration.self, from: Data(json.utf8))
        }
        configuration.applyEnvironment()
        if let port = options["port"].flatMap(Int.init) { configuration.port = port }
        if let host = options["host"] { configuration.host = host }
        var logger = Logger(label: "gateway")
        logger.logLevel = options["log-level"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        var redis: RedisClient?
        if let url = options["redis"] ?? ProcessInfo.processInfo.environment["SB_REDIS_URL"], !url.isEmpty {
            redis = RedisClient(configuration: try RedisConfiguration(url: url), logger: logger)
        }
        if let encoded = try? JSONEncoder().encode(configuration) {
            logger.debug("configuration", metadata: ["json": "\(String(decoding: encoded, as: UTF8.self))"])
        }
        let server = GatewayServer(configuration: configuration, redis: redis, logger: logger)
        let group = ServiceGroup(
            services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        let port = configuration.port
        FileHandle.standardOutput.write(Data("gateway starting on port \(port)\n".utf8))
        try await group.run()
        await redis?.close()
    }
}

enum GatewayLoadError: Error, CustomStringConvertible {
    case usage
    case failed(String)

    var description: String {
        switch self {
        case .usage:
            "usage: switchboard-bench gateway serve|idle|fanout|throughput [--port P] [--redis URL] [--config JSON] ..."
        case .failed(let reason): reason
        }
    }
}

/// `--name value` pairs.
struct Options {
    private var values: [String: String] = [:]

    init(_ arguments: [String]) {
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument.hasPrefix("--") {
                let name = String(argument.dropFirst(2))
                if index + 1 < arguments.count, !arguments[index + 1].hasPrefix("--") {
                    values[name] = arguments[index + 1]
                    index += 2
                    continue
                }
                values[name] = "true"
            }
            index += 1
        }
    }

    subscript(name: String) -> String? { values[name] }

    func int(_ name: String, _ fallback: Int) -> Int { values[name].flatMap(Int.init) ?? fallback }
}

/// Load generators. Each opens real WebSocket connections to a running gateway (started separately,
/// so its memory is measured alone) and speaks the client protocol; all loops are bounded.
enum GatewayBench {
    struct Target {
        var url: String
        var secret: String
        var serverPID: Int?

        init(_ options: Options) {
            url = options["url"] ?? "ws://127.0.0.1:\(options.int("port", 8000))/connection/websocket"
            secret = options["secret"] ?? ProcessInfo.processInfo.environment["SB_GATEWAY_TOKEN_SECRET"] ?? "bench-secret"
            serverPID = options["server-pid"].flatMap(Int.init)
        }
    }

    /// Shared counters of all bench connections.
    final class Stats: Sendable {
        let ready = Atomic<Int>(0)
        let deliveries = Atomic<Int>(0)
        let failures = Atomic<Int>(0)
        let latencies = Mutex<[Int64]>([])
        let recordLatency: Bool

        init(recordLatency: Bool) {
            self.recordLatency = recordLatency
        }
    }

    static func nowNanos() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    /// One subscriber connection: connect, subscribe (when `channel` is set), answer pings, count
    /// publications, until `stop` is cancelled.
    static func subscriber(target: Target, user: String, channel: String?, stats: Stats, logger: Logger) async {
        let token = GatewayTokens.mint(secret: target.secret, user: user, ttl: 3600)
        do {
            try await WebSocketClient.connect(url: target.url, configuration: .init(maxFrameSize: 1 << 20), logger: logger) { inbound, outbound, _ in
                try await outbound.write(.text(#"{"id":1,"connect":{"token":"\#(token)"}}"#))
                if let channel { try await outbound.write(.text(#"{"id":2,"subscribe":{"channel":"\#(channel)"}}"#)) }
                var pendingReplies = channel == nil ? 1 : 2
                for try await message in inbound.messages(maxSize: 1 << 20) {
                    guard case .text(let text) = message else { continue }
                    let now = nowNanos()
                    for line in text.split(separator: "\n") {
                        if line == "{}" {
                            try await outbound.write(.text("{}"))
                        } else if line.hasPrefix(#"{"push":{"channel""#) {
                            stats.deliveries.add(1, ordering: .relaxed)
                            if stats.recordLatency, let sent = timestamp(in: line) {
                                stats.latencies.withLock { $0.append(now - sent) }
                            }
                        } else if line.hasPrefix(#"{"id":"#) {
                            if line.contains(#""error""#) { stats.failures.add(1, ordering: .relaxed) }
                            pendingReplies -= 1
                            if pendingReplies == 0 { stats.ready.add(1, ordering: .relaxed) }
                        }
                    }
                }
            }
        } catch {
            if !Task.isCancelled { stats.failures.add(1, ordering: .relaxed) }
        }
    }

    /// The `"t":<nanos>` a bench publication carries.
    static func timestamp(in line: Substring) -> Int64? {
        guard let range = line.range(of: #""t":"#) else { return nil }
        let digits = line[range.upperBound...].prefix { $0.isNumber }
        return Int64(digits)
    }

    /// A connection that publishes what `next` yields (client publish, allowed by the namespace).
    static func publisher(target: Target, messages: AsyncStream<String>, logger: Logger) async throws {
        let token = GatewayTokens.mint(secret: target.secret, user: "bench-publisher", ttl: 3600)
        try await WebSocketClient.connect(url: target.url, configuration: .init(maxFrameSize: 1 << 20), logger: logger) { inbound, outbound, _ in
            try await outbound.write(.text(#"{"id":1,"connect":{"token":"\#(token)"}}"#))
            var id = 1
            let reader = Task {
                for try await message in inbound.messages(maxSize: 1 << 20) {
                    if case .text(let text) = message, text == "{}" { try await outbound.write(.text("{}")) }
                }
            }
            for await command in messages {
                id += 1
                try await outbound.write(.text(#"{"id":\#(id),"publish":\#(command)}"#))
            }
            reader.cancel()
        }
    }

    static func residentKB(pid: Int?) -> Int {
        guard let pid, let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        return 0
    }

    static func waitUntil(_ seconds: Double, _ condition: () -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return condition()
    }

    /// Opens `count` connections in batches, runs `body`, then closes them all.
    static func withConnections(
        target: Target, count: Int, channel: (Int) -> String?, stats: Stats, logger: Logger, body: () async throws -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            let batch = 250
            var opened = 0
            while opened < count {
                let end = min(count, opened + batch)
                for index in opened..<end {
                    let channelName = channel(index)
                    group.addTask { await subscriber(target: target, user: "u\(index)", channel: channelName, stats: stats, logger: logger) }
                }
                opened = end
                _ = await waitUntil(30) { stats.ready.load(ordering: .relaxed) + stats.failures.load(ordering: .relaxed) >= opened }
            }
            guard stats.failures.load(ordering: .relaxed) == 0 else {
                group.cancelAll()
                throw GatewayLoadError.failed("\(stats.failures.load(ordering: .relaxed)) connections failed (raise ulimit -n?)")
            }
            try await body()
            group.cancelAll()
        }
    }

    /// Idle connections held and the server's resident memory per connection.
    static func idle(_ options: Options) async throws {
        let target = Target(options)
        let count = options.int("connections", 10000)
        let hold = options.int("hold", 10)
        let logger = Logger(label: "bench")
        let stats = Stats(recordLatency: false)
        let before = residentKB(pid: target.serverPID)
        let started = Date()
        try await withConnections(target: target, count: count, channel: { _ in nil }, stats: stats, logger: logger) {
            let opened = Date().timeIntervalSince(started)
            try await Task.sleep(for: .seconds(hold))
            let after = residentKB(pid: target.serverPID)
            let perConnection = count > 0 ? Double(after - before) * 1024 / Double(count) : 0
            print("idle: connections=\(stats.ready.load(ordering: .relaxed)) opened_in=\(String(format: "%.1f", opened))s held=\(hold)s server_rss_before=\(before)KB server_rss_after=\(after)KB per_connection=\(String(format: "%.0f", perConnection))B")
        }
    }

    /// One publication fanned out to every subscriber of one channel; latency publish → deliver.
    static func fanout(_ options: Options) async throws {
        let target = Target(options)
        let count = options.int("subscribers", 10000)
        let rounds = options.int("publications", 20)
        let logger = Logger(label: "bench")
        let stats = Stats(recordLatency: true)
        let channel = options["channel"] ?? "bench:fanout"
        try await withConnections(target: target, count: count, channel: { _ in channel }, stats: stats, logger: logger) {
            let (messages, continuation) = AsyncStream.makeStream(of: String.self)
            let publishing = Task { try await publisher(target: target, messages: messages, logger: logger) }
            try await Task.sleep(for: .milliseconds(500))
            for round in 0..<rounds {
                let expected = (round + 1) * count
                continuation.yield(#"{"channel":"\#(channel)","data":{"t":\#(nowNanos())}}"#)
                _ = await waitUntil(10) { stats.deliveries.load(ordering: .relaxed) >= expected }
                try await Task.sleep(for: .milliseconds(100))
            }
            continuation.finish()
            _ = try? await publishing.value
            var latencies = stats.latencies.withLock { $0 }
            latencies.sort()
            func percentile(_ p: Double) -> Double {
                guard !latencies.isEmpty else { return 0 }
                return Double(latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]) / 1e6
            }
            print("fanout: subscribers=\(count) publications=\(rounds) deliveries=\(stats.deliveries.load(ordering: .relaxed))/\(count * rounds) p50=\(String(format: "%.1f", percentile(0.5)))ms p99=\(String(format: "%.1f", percentile(0.99)))ms max=\(String(format: "%.1f", percentile(1.0)))ms")
        }
    }

    /// Sustained deliveries per second: subscribers spread over many channels, publishers busy.
    static func throughput(_ options: Options) async throws {
        let target = Target(options)
        let channels = options.int("channels", 1000)
        let subscribers = options.int("subscribers", 10000)
        let seconds = options.int("seconds", 10)
        let rate = options.int("rate", 20000)
        let publishers = options.int("publishers", 2)
        let logger = Logger(label: "bench")
        let stats = Stats(recordLatency: false)
        try await withConnections(target: target, count: subscribers, channel: { "bench:ch\($0 % channels)" }, stats: stats, logger: logger) {
            var streams: [AsyncStream<String>.Continuation] = []
            var tasks: [Task<Void, any Error>] = []
            for _ in 0..<publishers {
                let (messages, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(10000))
                streams.append(continuation)
                tasks.append(Task { try await publisher(target: target, messages: messages, logger: logger) })
            }
            try await Task.sleep(for: .milliseconds(500))
            let start = Date()
            let startDeliveries = stats.deliveries.load(ordering: .relaxed)
            var published = 0
            let tick = 0.01
            while Date().timeIntervalSince(start) < Double(seconds) {
                let perTick = max(1, Int(Double(rate) * tick))
                for _ in 0..<perTick {
                    streams[published % publishers].yield(#"{"channel":"bench:ch\#(published % channels)","data":{"n":\#(published)}}"#)
                    published += 1
                }
                try await Task.sleep(for: .milliseconds(Int(tick * 1000)))
            }
            let elapsed = Date().timeIntervalSince(start)
            let delivered = stats.deliveries.load(ordering: .relaxed) - startDeliveries
            for stream in streams { stream.finish() }
            for task in tasks { _ = try? await task.value }
            print("throughput: channels=\(channels) subscribers=\(subscribers) published=\(published) in \(String(format: "%.1f", elapsed))s deliveries=\(delivered) deliveries_per_second=\(Int(Double(delivered) / elapsed))")
        }
    }
}
