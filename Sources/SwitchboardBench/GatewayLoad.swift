import Foundation
#if canImport(CoreFoundation)
import CoreFoundation  // declares `timespec` on Linux (needed with MemberImportVisibility)
#endif
import CDispatch  // with CSocket in the target, `timespec` is found through CDispatch (MemberImportVisibility)
import Gateway
import Logging
import NIOCore
import RedisClient
import NIOPosix
import ServiceLifecycle
import Synchronization
import UnixSignals

/// `switchboard-bench gateway serve|idle|fanout|throughput|abuse|nio-floor|epoll-floor`: a
/// development server for the interop tests, the load generators behind scripts/bench/gateway.sh
/// and gateway-compare.sh, and the two floors for a new connection (NIOFloor, EpollFloor). The load
/// generators drive the gateway (`--target gateway`, the default) or nchan (`--target nchan`,
/// started from scripts/bench/nchan/nginx.conf) with the same connections, timing and accounting.
/// Gateway subscribers use the client protocol on /connection/websocket, or with `--transport uni`
/// the unidirectional endpoint (the connect request in the URL, the channel in the token), or with
/// `--transport sse` the Server-Sent Events stream (`EventSourceSubscriber`; nchan's EventSource
/// subscriber for `--target nchan`).
enum GatewayLoad {
    static func run(_ arguments: [String]) async throws {
        guard let mode = arguments.first else { throw GatewayLoadError.usage }
        let options = Options(Array(arguments.dropFirst()))
        switch mode {
        case "serve": try await serve(options)
        case "idle": try await GatewayBench.idle(options)
        case "fanout": try await GatewayBench.fanout(options)
        case "throughput": try await GatewayBench.throughput(options)
        case "abuse": try await GatewayBench.abuse(options)
        case "nio-floor": try await NIOFloor.serve(options)
        case "epoll-floor": try await EpollFloor.serve(options)
        default: throw GatewayLoadError.usage
        }
    }

    /// Runs a gateway: `--port P --host H --internal-port P --redis URL --config JSON` (JSON is the `gateway:` section;
    /// also read from SB_GATEWAY_CONFIG_JSON and SB_REDIS_URL).
    static func serve(_ options: Options) async throws {
        var configuration = GatewayConfiguration()
        if let json = options["config"] ?? ProcessInfo.processInfo.environment["SB_GATEWAY_CONFIG_JSON"], !json.isEmpty {
            configuration = try JSONDecoder().decode(GatewayConfiguration.self, from: Data(json.utf8))
        }
        if let port = options["port"].flatMap(Int.init) { configuration.port = port }
        if let host = options["host"] { configuration.host = host }
        // The internal listener (server API, /metrics): `--internal-port`, else a free port, so a
        // benchmark gateway never collides with one already running on 8001.
        configuration.internalPort = options["internal-port"].flatMap(Int.init) ?? 0
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
            "usage: switchboard-bench gateway serve|idle|fanout|throughput|abuse|nio-floor|epoll-floor [--port P] [--redis URL] [--config JSON] ..."
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
/// so its memory and CPU are measured alone) and speaks the client protocol. Connections are NIO
/// channel handlers with hand-rolled RFC 6455 framing on one event loop thread by default, so the
/// load tool spends little CPU of its own; all loops are bounded.
enum GatewayBench {
    struct Target: Sendable {
        /// What the load tool talks to: the gateway (client protocol: connect with a token,
        /// subscribe, publish commands) or nchan (a WebSocket to /sub/{channel} is the
        /// subscription; publishes are HTTP POSTs to /pub/{channel}; see NchanPublisher).
        enum Kind: String, Sendable { case gateway, nchan }

        /// How subscribers connect: `websocket` (the gateway's client protocol; nchan's WebSocket
        /// subscriber), `uni` (the gateway's /connection/uni_websocket: the connect request in the
        /// URL, the channel in the token, no commands) or `sse` (`EventSource`'s request: the
        /// gateway's /connection/uni_sse, the same connect request in the URL; nchan's
        /// EventSource subscriber).
        enum Transport: String, Sendable { case websocket, uni, sse }

        var kind: Kind
        var transport: Transport
        var host: String
        var port: Int
        var secret: String
        var serverPID: Int?
        var group: MultiThreadedEventLoopGroup

        init(_ options: Options) throws {
            guard let kind = Kind(rawValue: options["target"] ?? "gateway") else {
                throw GatewayLoadError.failed("--target is gateway or nchan")
            }
            self.kind = kind
            guard let transport = Transport(rawValue: options["transport"] ?? "websocket"), kind == .gateway || transport != .uni else {
                throw GatewayLoadError.failed("--transport is websocket, uni (gateway only) or sse")
            }
            self.transport = transport
            host = options["host"] ?? "127.0.0.1"
            port = options.int("port", 8000)
            secret = options["secret"] ?? ProcessInfo.processInfo.environment["SB_GATEWAY_TOKEN_SECRET"] ?? "bench-secret"
            serverPID = options["server-pid"].flatMap(Int.init)
            group = MultiThreadedEventLoopGroup(numberOfThreads: options.int("threads", 1))
        }

        /// Subscriber connection number `index`, subscribed to `channel`. A gateway connection
        /// without a channel only connects; nchan has no connection without a channel, so it gets
        /// one of its own.
        func subscriber(_ index: Int, channel: String?, stats: Stats) -> any ChannelHandler & Sendable {
            let nchanPath = "/sub/\(channel ?? "bench:idle\(index)")"
            switch (kind, transport) {
            case (.gateway, .websocket):
                let token = GatewayTokens.mint(secret: secret, user: "u\(index)", ttl: 3600)
                return BenchConnection(mode: .client(token: token, subscribe: channel), stats: stats)
            case (.gateway, .uni):
                return BenchConnection(mode: .unidirectional(token: serverSideToken(index, channel: channel)), stats: stats)
            case (.gateway, .sse):
                return EventSourceSubscriber(
                    path: "/connection/uni_sse?cf_connect=\(Self.connectQuery(token: serverSideToken(index, channel: channel)))",
                    connectPushFirst: true, stats: stats)
            case (.nchan, .sse):
                return EventSourceSubscriber(path: nchanPath, connectPushFirst: false, stats: stats)
            case (.nchan, _):
                return BenchConnection(mode: .plain(path: nchanPath), stats: stats)
            }
        }

        /// A token whose `channels` claim subscribes the connection (the unidirectional endpoints).
        private func serverSideToken(_ index: Int, channel: String?) -> String {
            GatewayTokens.mint(secret: secret, user: "u\(index)", ttl: 3600, channels: channel.map { [$0] } ?? [])
        }

        /// `{"token":"…"}`, percent-encoded for `cf_connect` (a JWT needs no escaping of its own).
        static func connectQuery(token: String) -> String { "%7B%22token%22%3A%22\(token)%22%7D" }
    }

    /// Shared counters of all bench connections.
    final class Stats: Sendable {
        let ready = Atomic<Int>(0)
        let deliveries = Atomic<Int>(0)
        /// Publishes answered with a result.
        let acknowledged = Atomic<Int>(0)
        /// Publishes answered with an error: failures of the run, not acknowledgements.
        let publishErrors = Atomic<Int>(0)
        /// Connections that failed to connect or subscribe, or were closed by the server.
        let failures = Atomic<Int>(0)
        /// Close codes the server sent these connections, with how often.
        let closeCodes = Mutex<[Int: Int]>([:])
        /// Publishes answered either way (for the in-flight bound).
        var answered: Int { acknowledged.load(ordering: .relaxed) + publishErrors.load(ordering: .relaxed) }
        let latencies = Mutex<[Int64]>([])
        let recordLatency: Bool
        /// Latency is read from every `sampleEvery`-th delivery (parsing every one costs the load tool CPU).
        let sampleEvery: Int

        init(recordLatency: Bool, sampleEvery: Int = 1) {
            self.recordLatency = recordLatency
            self.sampleEvery = sampleEvery
        }

        private static let timestampKey = Array(#""t":"#.utf8)

        /// Counts one delivered message and, for every `sampleEvery`-th, the latency from the send
        /// time in its `"t":` field.
        func record(delivery message: UnsafeRawBufferPointer, now: Int64) {
            let count = deliveries.add(1, ordering: .relaxed).newValue
            if recordLatency, count % sampleEvery == 0, let start = BenchConnection.offset(of: Self.timestampKey, in: message) {
                var sent: Int64 = 0
                var index = start + Self.timestampKey.count
                while index < message.count, message[index] >= UInt8(ascii: "0"), message[index] <= UInt8(ascii: "9") {
                    sent = sent * 10 + Int64(message[index] - UInt8(ascii: "0"))
                    index += 1
                }
                latencies.withLock { $0.append(now - sent) }
            }
        }
    }

    static func nowNanos() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    /// CPU seconds (user + system) a process has used so far, from /proc.
    static func cpuSeconds(pid: Int?) -> Double {
        let path = pid.map { "/proc/\($0)/stat" } ?? "/proc/self/stat"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8), let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // Fields after the command: state is index 0, utime 11, stime 12 (clock ticks).
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
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
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }

    /// CPU used by the server and by this process over a measured window.
    struct CPUWindow {
        let serverPID: Int?
        let start = Date()
        let server: Double
        let bench: Double

        init(serverPID: Int?) {
            self.serverPID = serverPID
            server = GatewayBench.cpuSeconds(pid: serverPID)
            bench = GatewayBench.cpuSeconds(pid: nil)
        }

        var serverSeconds: Double { GatewayBench.cpuSeconds(pid: serverPID) - server }

        var summary: String {
            let elapsed = max(Date().timeIntervalSince(start), 0.001)
            let serverCores = serverSeconds / elapsed
            let benchCores = (GatewayBench.cpuSeconds(pid: nil) - bench) / elapsed
            return "server_cpu=\(serverPID == nil ? "?" : String(format: "%.2f", serverCores))cores bench_cpu=\(String(format: "%.2f", benchCores))cores"
        }
    }

    static func connect(target: Target, handler: any ChannelHandler & Sendable) async throws -> any Channel {
        try await startConnect(target: target, handler: handler).get()
    }

    static func startConnect(target: Target, handler: any ChannelHandler & Sendable) -> EventLoopFuture<any Channel> {
        ClientBootstrap(group: target.group)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) }
            }
            .connect(host: target.host, port: target.port)
    }

    /// Opens `count` subscriber connections in batches (each connected and subscribed before the
    /// next batch), runs `body`, then closes them all.
    static func withConnections(
        target: Target, count: Int, channel: (Int) -> String?, stats: Stats, body: () async throws -> Void
    ) async throws {
        var channels: [any Channel] = []
        channels.reserveCapacity(count)
        defer {
            for channel in channels { channel.close(promise: nil) }
        }
        let batch = 500
        var opened = 0
        while opened < count {
            let end = min(count, opened + batch)
            // The batch's handlers (and tokens) first, then its connects all started at once: they
            // reach the server as fast as the tool can open sockets, as a reconnect storm would.
            let handlers = (opened..<end).map { target.subscriber($0, channel: channel($0), stats: stats) }
            let connecting = handlers.map { startConnect(target: target, handler: $0) }
            for future in connecting {
                do {
                    channels.append(try await future.get())
                } catch {
                    stats.failures.add(1, ordering: .relaxed)
                }
            }
            opened = end
            _ = await waitUntil(30) { stats.ready.load(ordering: .relaxed) + stats.failures.load(ordering: .relaxed) >= opened }
            guard stats.failures.load(ordering: .relaxed) == 0 else {
                throw GatewayLoadError.failed("\(stats.failures.load(ordering: .relaxed)) connections failed (raise ulimit -n?)")
            }
        }
        guard stats.ready.load(ordering: .relaxed) >= count else {
            throw GatewayLoadError.failed("only \(stats.ready.load(ordering: .relaxed)) of \(count) connections became ready")
        }
        try await body()
        try? await Task.sleep(for: .milliseconds(200))
    }

    /// A publishing connection: client publish commands (allowed by the namespace) to the
    /// gateway, keep-alive HTTP POSTs to nchan. Answers count in `stats.acknowledged`.
    final class Publisher: Sendable {
        let channel: any Channel
        private let kind: Target.Kind
        private let nextID = Atomic<Int>(1)

        init(target: Target, stats: Stats) async throws {
            kind = target.kind
            switch target.kind {
            case .gateway:
                let token = GatewayTokens.mint(secret: target.secret, user: "bench-publisher", ttl: 3600)
                let handler = BenchConnection(mode: .client(token: token, subscribe: nil), stats: stats)
                channel = try await GatewayBench.connect(target: target, handler: handler)
            case .nchan:
                channel = try await GatewayBench.connect(target: target, handler: NchanPublisher(stats: stats))
            }
        }

        /// Publishes `data` (JSON) to each `channel`, in order, all written with one flush.
        func send(_ publications: [(channel: String, data: String)]) {
            var buffer = channel.allocator.buffer(capacity: publications.count * 128)
            for publication in publications {
                let id = nextID.add(1, ordering: .relaxed).newValue
                switch kind {
                case .gateway:
                    BenchConnection.writeFrame(
                        #"{"id":\#(id),"publish":{"channel":"\#(publication.channel)","data":\#(publication.data)}}"#, to: &buffer)
                case .nchan:
                    NchanPublisher.writeRequest(channel: publication.channel, body: publication.data, to: &buffer)
                }
            }
            channel.writeAndFlush(buffer, promise: nil)
        }

        var sent: Int { nextID.load(ordering: .relaxed) - 1 }
    }

    /// Idle connections held and the server's resident memory per connection, and the server CPU
    /// each new connection cost while they were opened (WebSocket upgrade, for the gateway the
    /// token check, and with `--subscribe` a subscription to a channel of its own, `bench:idle{i}`;
    /// nchan connections always subscribe, that being what a connection to it is).
    static func idle(_ options: Options) async throws {
        let target = try Target(options)
        let count = options.int("connections", 10000)
        let hold = options.int("hold", 10)
        let subscribe = options["subscribe"] == "true"
        let stats = Stats(recordLatency: false)
        let before = residentKB(pid: target.serverPID)
        let started = Date()
        let serverCPUBefore = cpuSeconds(pid: target.serverPID)
        try await withConnections(
            target: target, count: count, channel: { subscribe ? "bench:idle\($0)" : nil }, stats: stats
        ) {
            let opened = Date().timeIntervalSince(started)
            let perNewConnection = (cpuSeconds(pid: target.serverPID) - serverCPUBefore) * 1e6 / Double(max(count, 1))
            let window = CPUWindow(serverPID: target.serverPID)
            try await Task.sleep(for: .seconds(hold))
            let after = residentKB(pid: target.serverPID)
            let perConnection = count > 0 ? Double(after - before) * 1024 / Double(count) : 0
            print("idle: connections=\(stats.ready.load(ordering: .relaxed)) opened_in=\(String(format: "%.1f", opened))s held=\(hold)s server_rss_before=\(before)KB server_rss_after=\(after)KB per_connection=\(String(format: "%.0f", perConnection))B server_cpu_per_new_connection=\(target.serverPID == nil ? "?" : String(format: "%.0f", perNewConnection))us \(window.summary)")
        }
    }

    /// One publication fanned out to every subscriber of one channel; latency publish → deliver.
    static func fanout(_ options: Options) async throws {
        let target = try Target(options)
        let count = options.int("subscribers", 10000)
        let rounds = options.int("publications", 20)
        let stats = Stats(recordLatency: true)
        let channel = options["channel"] ?? "bench:fanout"
        try await withConnections(target: target, count: count, channel: { _ in channel }, stats: stats) {
            let publisher = try await Publisher(target: target, stats: stats)
            defer { publisher.channel.close(promise: nil) }
            _ = await waitUntil(10) { stats.ready.load(ordering: .relaxed) > count }
            let window = CPUWindow(serverPID: target.serverPID)
            var complete = 0
            for round in 0..<rounds {
                let expected = (round + 1) * count
                publisher.send([(channel, #"{"t":\#(nowNanos())}"#)])
                if await waitUntil(10, { stats.deliveries.load(ordering: .relaxed) >= expected }) { complete += 1 }
                try await Task.sleep(for: .milliseconds(100))
            }
            var latencies = stats.latencies.withLock { $0 }
            latencies.sort()
            func percentile(_ p: Double) -> Double {
                guard !latencies.isEmpty else { return 0 }
                return Double(latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]) / 1e6
            }
            print("fanout: subscribers=\(count) publications=\(rounds) deliveries=\(stats.deliveries.load(ordering: .relaxed))/\(count * rounds) first=\(String(format: "%.1f", percentile(0)))ms p10=\(String(format: "%.1f", percentile(0.1)))ms p50=\(String(format: "%.1f", percentile(0.5)))ms p99=\(String(format: "%.1f", percentile(0.99)))ms max=\(String(format: "%.1f", percentile(1.0)))ms server_cpu_per_publication=\(String(format: "%.1f", window.serverSeconds * 1000 / Double(rounds)))ms publish_errors=\(stats.publishErrors.load(ordering: .relaxed)) \(window.summary)")
            _ = await waitUntil(10) { stats.answered >= rounds }
            try checkPublishes(published: rounds, stats: stats)
        }
    }

    /// Sustained deliveries per second: subscribers spread over many channels, publishers sending
    /// at a fixed offered rate (with a bounded number of unanswered publishes).
    static func throughput(_ options: Options) async throws {
        let target = try Target(options)
        let channels = options.int("channels", 1000)
        let subscribers = options.int("subscribers", 10000)
        let seconds = options.int("seconds", 10)
        let rate = options.int("rate", 30000)
        let publisherCount = options.int("publishers", 16)
        let maxInFlight = options.int("in-flight", 2000)
        let stats = Stats(recordLatency: true, sampleEvery: 16)
        try await withConnections(target: target, count: subscribers, channel: { "bench:ch\($0 % channels)" }, stats: stats) {
            var publishers: [Publisher] = []
            for _ in 0..<publisherCount { publishers.append(try await Publisher(target: target, stats: stats)) }
            defer { for publisher in publishers { publisher.channel.close(promise: nil) } }
            _ = await waitUntil(10) { stats.ready.load(ordering: .relaxed) >= subscribers + publisherCount }
            let window = CPUWindow(serverPID: target.serverPID)
            let start = Date()
            let startDeliveries = stats.deliveries.load(ordering: .relaxed)
            stats.latencies.withLock { $0.removeAll() }
            var published = 0
            let tick = 0.005
            while Date().timeIntervalSince(start) < Double(seconds) {
                let due = Int(Date().timeIntervalSince(start) * Double(rate))
                let inFlight = published - stats.answered
                let count = min(due - published, maxInFlight - inFlight)
                if count > 0 {
                    var batches = Array(repeating: [(channel: String, data: String)](), count: publisherCount)
                    for _ in 0..<count {
                        batches[published % publisherCount].append(
                            ("bench:ch\(published % channels)", #"{"n":\#(published),"t":\#(nowNanos())}"#))
                        published += 1
                    }
                    for (index, batch) in batches.enumerated() where !batch.isEmpty { publishers[index].send(batch) }
                }
                try await Task.sleep(for: .milliseconds(Int(tick * 1000)))
            }
            let elapsed = Date().timeIntervalSince(start)
            let delivered = stats.deliveries.load(ordering: .relaxed) - startDeliveries
            // Replies still on their way are waited for, so every publish is counted one way or the other.
            _ = await waitUntil(10) { stats.answered >= published }
            let acknowledged = stats.acknowledged.load(ordering: .relaxed)
            let publishErrors = stats.publishErrors.load(ordering: .relaxed)
            var latencies = stats.latencies.withLock { $0 }
            latencies.sort()
            func percentile(_ p: Double) -> String {
                guard !latencies.isEmpty else { return "?" }
                return String(format: "%.0f", Double(latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))]) / 1e6)
            }
            print("throughput: channels=\(channels) subscribers=\(subscribers) offered=\(rate)/s in_flight_limit=\(maxInFlight) published=\(published) acknowledged=\(acknowledged) publish_errors=\(publishErrors) unanswered=\(published - acknowledged - publishErrors) connection_failures=\(stats.failures.load(ordering: .relaxed)) in \(String(format: "%.1f", elapsed))s deliveries=\(delivered) deliveries_per_second=\(Int(Double(delivered) / elapsed)) latency_p50=\(percentile(0.5))ms latency_p99=\(percentile(0.99))ms server_cpu_per_delivery=\(String(format: "%.1f", window.serverSeconds * 1e6 / Double(max(delivered, 1))))us \(window.summary)")
            try checkPublishes(published: published, stats: stats)
        }
    }

    /// Fails the run when a publish was answered with an error or not at all.
    static func checkPublishes(published: Int, stats: Stats) throws {
        let errors = stats.publishErrors.load(ordering: .relaxed)
        let unanswered = published - stats.answered
        if errors > 0 || unanswered > 0 {
            throw GatewayLoadError.failed("FAIL: \(errors) of \(published) publishes answered with an error, \(unanswered) not answered")
        }
    }
}

/// One bench WebSocket client. To the gateway (`.client`): sends the upgrade request, then `connect`
/// (and `subscribe`), answers pings, counts publications and replies. To nchan (`.plain`): the
/// upgrade to the subscriber path is the subscription, and every text frame is one delivery.
/// Runs entirely in NIO callbacks.
final class BenchConnection: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Mode: Sendable {
        /// The gateway's client protocol on /connection/websocket.
        case client(token: String, subscribe: String?)
        /// A WebSocket to `path` whose text frames are the messages (nchan's subscriber).
        case plain(path: String)
        /// The gateway's /connection/uni_websocket, the connect request (`token`, whose
        /// `channels` claim subscribes) in the URL; ready at its connect push.
        case unidirectional(token: String)
    }

    private struct State {
        var upgraded = false
        var received: ByteBuffer?
        var pendingReplies = 0
    }

    private let mode: Mode
    private let stats: GatewayBench.Stats
    private let answersPings: Bool
    private let state = Mutex(State())

    init(mode: Mode, stats: GatewayBench.Stats, answersPings: Bool = true) {
        self.mode = mode
        self.stats = stats
        self.answersPings = answersPings
    }

    /// Connected (and subscribed), every setup reply read.
    var isReady: Bool { state.withLock { $0.upgraded && $0.pendingReplies == 0 } }

    func channelActive(context: ChannelHandlerContext) {
        let path: String
        switch mode {
        case .client: path = "/connection/websocket"
        case .plain(let subscriberPath): path = subscriberPath
        case .unidirectional(let token): path = "/connection/uni_websocket?cf_connect=\(GatewayBench.Target.connectQuery(token: token))"
        }
        let request =
            "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: request)), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let ready = state.withLock { $0.upgraded && $0.pendingReplies == 0 }
        if !ready { stats.failures.add(1, ordering: .relaxed) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        var out: ByteBuffer?
        var lines: [ByteBuffer] = []
        var pings = 0
        var failed = false
        var becameReady = false
        state.withLock { state in
            if state.received == nil {
                state.received = chunk
            } else {
                state.received!.writeBuffer(&chunk)
            }
            if !state.upgraded {
                guard let view = state.received, let end = view.readableBytesView.firstRange(of: Array("\r\n\r\n".utf8)) else { return }
                let headLength = end.upperBound - view.readableBytesView.startIndex
                let head = view.getString(at: view.readerIndex, length: headLength) ?? ""
                guard head.hasPrefix("HTTP/1.1 101") else {
                    failed = true
                    return
                }
                state.received!.moveReaderIndex(forwardBy: headLength)
                state.upgraded = true
                if case .client(let token, let subscribe) = mode {
                    var buffer = context.channel.allocator.buffer(capacity: 512)
                    Self.writeFrame(#"{"id":1,"connect":{"token":"\#(token)"}}"#, to: &buffer)
                    state.pendingReplies = 1
                    if let subscribe {
                        Self.writeFrame(#"{"id":2,"subscribe":{"channel":"\#(subscribe)"}}"#, to: &buffer)
                        state.pendingReplies = 2
                    }
                    out = buffer
                } else if case .unidirectional = mode {
                    state.pendingReplies = 1
                } else {
                    becameReady = true
                }
            }
            // Server frames are unmasked: opcode byte, length (7, 16 or 64 bit), payload.
            while var received = state.received, received.readableBytes >= 2 {
                let first = received.readInteger(as: UInt8.self)!
                var length = Int(received.readInteger(as: UInt8.self)! & 0x7F)
                if length == 126 {
                    guard let extended = received.readInteger(as: UInt16.self) else { break }
                    length = Int(extended)
                } else if length == 127 {
                    guard let extended = received.readInteger(as: UInt64.self) else { break }
                    length = Int(extended)
                }
                guard let payload = received.readSlice(length: length) else { break }
                state.received = received.readableBytes == 0 ? nil : received
                switch first & 0x0F {
                case 0x1, 0x2, 0x0: lines.append(payload)
                case 0x9: pings += 1
                case 0x8:
                    failed = true
                    let code = payload.getInteger(at: payload.readerIndex, as: UInt16.self).map(Int.init) ?? 0
                    stats.closeCodes.withLock { $0[code, default: 0] += 1 }
                default: break
                }
            }
        }
        if let out { context.writeAndFlush(wrapOutboundOut(out), promise: nil) }
        if pings > 0, answersPings {
            var buffer = context.channel.allocator.buffer(capacity: 6 * pings)
            for _ in 0..<pings { Self.writeFrame("", opcode: 0xA, to: &buffer) }
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        }
        if becameReady { stats.ready.add(1, ordering: .relaxed) }
        if failed {
            context.close(promise: nil)
            return
        }
        guard !lines.isEmpty else { return }
        let now = GatewayBench.nowNanos()
        if case .unidirectional = mode {
            // The first message is the connect push; the rest are publications (and `{}` pings).
            for payload in lines {
                let setup = state.withLock { state -> Bool in
                    guard state.pendingReplies > 0 else { return false }
                    state.pendingReplies = 0
                    return true
                }
                if setup {
                    let connected = payload.readableBytesView.starts(with: Array(#"{"connect""#.utf8))
                    if connected { stats.ready.add(1, ordering: .relaxed) } else { stats.failures.add(1, ordering: .relaxed) }
                } else if payload.readableBytes > 2 {
                    payload.withUnsafeReadableBytes { stats.record(delivery: $0, now: now) }
                }
            }
            return
        }
        if case .plain = mode {
            for payload in lines {
                payload.withUnsafeReadableBytes { stats.record(delivery: $0, now: now) }
            }
            return
        }
        var pongs = 0
        for payload in lines {
            payload.withUnsafeReadableBytes { bytes in
                var lineStart = 0
                while lineStart < bytes.count {
                    var lineEnd = lineStart
                    while lineEnd < bytes.count, bytes[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
                    handleLine(UnsafeRawBufferPointer(rebasing: bytes[lineStart..<lineEnd]), now: now, pongs: &pongs)
                    lineStart = lineEnd + 1
                }
            }
        }
        if pongs > 0, answersPings {
            var buffer = context.channel.allocator.buffer(capacity: 8 * pongs)
            for _ in 0..<pongs { Self.writeFrame("{}", to: &buffer) }
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        }
    }

    private static let pushPrefix = Array(#"{"push":{"channel""#.utf8)
    private static let replyPrefix = Array(#"{"id":"#.utf8)
    private static let errorKey = Array(#""error""#.utf8)

    private func handleLine(_ line: UnsafeRawBufferPointer, now: Int64, pongs: inout Int) {
        if line.count == 2, line[0] == UInt8(ascii: "{"), line[1] == UInt8(ascii: "}") {
            pongs += 1
        } else if line.starts(with: Self.pushPrefix) {
            stats.record(delivery: line, now: now)
        } else if line.starts(with: Self.replyPrefix) {
            let isError = Self.offset(of: Self.errorKey, in: line) != nil
            enum Reply { case setup, ready, publish }
            let reply = state.withLock { state -> Reply in
                guard state.pendingReplies > 0 else { return .publish }
                state.pendingReplies -= 1
                return state.pendingReplies == 0 ? .ready : .setup
            }
            switch reply {
            case .setup, .ready:
                // A refused connect or subscribe is a failed connection.
                if isError { stats.failures.add(1, ordering: .relaxed) }
                if reply == .ready, !isError { stats.ready.add(1, ordering: .relaxed) }
            case .publish:
                if isError {
                    stats.publishErrors.add(1, ordering: .relaxed)
                } else {
                    stats.acknowledged.add(1, ordering: .relaxed)
                }
            }
        }
    }

    /// Where `needle` first occurs in `haystack`, by a plain byte loop. Foundation's generic
    /// `firstRange(of:)` cost the tool about as much CPU per delivery as reading the socket, and more
    /// for the gateway's longer messages than for nchan's, which skewed the fan-out latencies it compares.
    static func offset(of needle: [UInt8], in haystack: UnsafeRawBufferPointer) -> Int? {
        guard let first = needle.first, haystack.count >= needle.count else { return nil }
        var index = 0
        let last = haystack.count - needle.count
        outer: while index <= last {
            if haystack[index] == first {
                for k in 1..<needle.count where haystack[index + k] != needle[k] {
                    index += 1
                    continue outer
                }
                return index
            }
            index += 1
        }
        return nil
    }

    /// Appends one masked client frame (text unless `opcode` says otherwise).
    static func writeFrame(_ text: String, opcode: UInt8 = 0x1, to buffer: inout ByteBuffer) {
        let payload = Array(text.utf8)
        buffer.writeInteger(UInt8(0x80 | opcode))
        if payload.count < 126 {
            buffer.writeInteger(UInt8(0x80 | payload.count))
        } else if payload.count <= 0xFFFF {
            buffer.writeInteger(UInt8(0x80 | 126))
            buffer.writeInteger(UInt16(payload.count))
        } else {
            buffer.writeInteger(UInt8(0x80 | 127))
            buffer.writeInteger(UInt64(payload.count))
        }
        let mask: (UInt8, UInt8, UInt8, UInt8) = (0x5A, 0x17, 0xC3, 0x8E)
        buffer.writeInteger(mask.0)
        buffer.writeInteger(mask.1)
        buffer.writeInteger(mask.2)
        buffer.writeInteger(mask.3)
        let key = [mask.0, mask.1, mask.2, mask.3]
        var masked = payload
        for index in masked.indices { masked[index] ^= key[index & 3] }
        buffer.writeBytes(masked)
    }
}
