// `switchboard-bench pipeline`: pipeline overhead per turn as a client sees it — from sending
// `POST /api/v1/chats/{id}/messages` to the first `chunk` event on the turn's SSE stream — through a
// live api node and a worker (in this process, the same handlers as `serve`) over real Redis and
// MariaDB, with an instant scripted provider. One turn at a time, then open loop at --rate turns/s.
import AIProviders
import APIServer
import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import Observability
import Pipeline
import Queue
import RedisClient
import ServiceLifecycle
import Storage
import SwitchboardApp
import SwitchboardCore
import Turns

enum PipelineLoad {
    static let usage = """
        usage: switchboard-bench pipeline [--redis URL] [--database URL] [--turns N] [--rate R] [--warmup N]
                   [--mode post|stream] [--concurrency N] [--timeline FILE] [--tracing-endpoint URL]
                   [--router on|off] [--topics N]
          post:   POST /api/v1/chats/{id}/messages, then GET /api/v1/messages/{id}/events (default)
          stream: POST /api/v1/messages/stream (one request)
          --timeline FILE: the open-loop turns as CSV (when each was due, how long each took)
          --tracing-endpoint URL: tracing on (every trace sampled), exporting OTLP/HTTP to URL (…/v1/traces)
          --topics N: topics seeded for the bench user, each with its description and five example
                      phrases, as a deployment has them (default 8; 0: none, the router has nothing to do)
          --router off: the classifier skips the embedding router (on by default)
        """

    /// Topics as a deployment defines them: a name, a description for the sorter and example
    /// phrases for the embedding router. `--topics N` takes the first N (repeating with a suffix).
    static let seedTopics: [(name: String, description: String, examples: [String])] = [
        ("billing", "Invoices, payments, refunds and subscription plans", [
            "I was charged twice this month", "How do I get a refund", "Where can I download my invoice",
            "Change my payment card", "Which plan includes more seats"]),
        ("shipping", "Deliveries, tracking numbers and returns", [
            "Where is my parcel", "My order has not arrived yet", "How do I return an item",
            "Can you ship to Canada", "The tracking number does not work"]),
        ("account", "Sign-in, passwords, profile and deleting an account", [
            "I forgot my password", "How do I change my email address", "Delete my account",
            "I cannot log in", "Enable two factor authentication"]),
        ("technical", "Errors, crashes and how the product works", [
            "The app crashes when I open it", "I get an error 500", "How do I connect the API",
            "The page does not load", "Sync stopped working"]),
        ("sales", "Prices, quotes, demos and enterprise contracts", [
            "Can I get a quote for 200 users", "Book a demo", "Do you offer discounts for schools",
            "Talk to sales", "What does the enterprise plan cost"]),
        ("science", "Explanations of natural phenomena and how things work", [
            "How do tides work", "Why is the sky blue", "Explain photosynthesis",
            "What causes earthquakes", "How does the moon affect the ocean"]),
        ("legal", "Terms, privacy, data requests and contracts", [
            "Where is your privacy policy", "Send me my personal data", "Can I sign a DPA",
            "What are the terms of service", "How long do you keep my data"]),
        ("feedback", "Suggestions, complaints and praise", [
            "I have a feature request", "Your support was great", "I want to complain",
            "Please add dark mode", "The new design is confusing"]),
    ]

    struct BenchError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// The sorter answers at once; every other call answers "ok" (one token).
    static let provider = ScriptedProvider { request in
        request.slot == .sort ? .init(text: #"{"topic":"general","language":"en","web_search":false,"multi":false}"#) : .init(text: "ok")
    }

    static func run(_ arguments: [String]) async throws {
        let options = Options(arguments)
        if options["help"] != nil { throw BenchError(usage) }
        let turns = options.int("turns", 1000)
        let rate = Double(options["rate"] ?? "200") ?? 200
        let warmup = options.int("warmup", 50)
        let mode = options["mode"] ?? "post"
        let timeline = options["timeline"]
        let topics = options.int("topics", 8)
        let router = options["router"] ?? "on"
        guard mode == "post" || mode == "stream", router == "on" || router == "off", topics >= 0 else { throw BenchError(usage) }
        let environment = ProcessInfo.processInfo.environment
        let redisURL = options["redis"] ?? environment["SB_REDIS_URL"] ?? "redis://127.0.0.1:6380/0"
        let databaseURL = options["database"] ?? environment["SB_DATABASE_URL"] ?? "mariadb://switchboard:switchboard@127.0.0.1:3307/switchboard"
        var logger = Logger(label: "switchboard-bench.pipeline")
        logger.logLevel = .warning
        // Tracing on: the tracer is installed before the api's router is built (it adds its span
        // middleware then), and the exporter runs in a group stopped (and flushed) at the end.
        var exporter: ServiceGroup?
        if let endpoint = options["tracing-endpoint"] {
            let configuration = TracingConfiguration(
                enabled: true, endpoint: endpoint, sampleRatio: 1, serviceName: "switchboard-bench",
                instanceID: TracingConfiguration.defaultInstanceID(roles: "bench"))
            if let service = try TracingSetup.bootstrap(configuration, logger: logger) {
                exporter = ServiceGroup(configuration: .init(services: [service], logger: logger))
            }
            print("tracing on: every turn's spans exported to \(endpoint)")
        } else {
            print("tracing off")
        }
        let exporting = exporter.map { group in Task { try await group.run() } }

        var redisConfiguration = try RedisConfiguration(url: redisURL)
        redisConfiguration.keyPrefix = "sbbench:\(UInt32.random(in: 0...UInt32.max)):"
        let redis = RedisClient(configuration: redisConfiguration, logger: logger)
        let outcome: Result<Void, any Error>
        do {
            try await BenchDatabase.with(url: databaseURL, poolSize: 16, label: "", logger: logger) { stores in
                try await measure(
                    redis: redis, stores: stores, turns: turns, rate: rate, warmup: warmup, mode: mode,
                    workerConcurrency: options.int("concurrency", 16), timeline: timeline, topics: topics, router: router == "on",
                    logger: logger)
            }
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        if let keys = try? await redis.send(RedisCommand("KEYS", redisConfiguration.keyPrefix + "*")).array {
            let names = keys.compactMap(\.bytes)
            if !names.isEmpty { _ = try? await redis.send(RedisCommand("DEL", arguments: names)) }
        }
        await redis.close()
        await exporter?.triggerGracefulShutdown()
        _ = await exporting?.result
        try outcome.get()
    }

    static func measure(
        redis: RedisClient, stores: Stores, turns: Int, rate: Double, warmup: Int, mode: String, workerConcurrency: Int,
        timeline: String?, topics: Int, router: Bool, logger: Logger
    ) async throws {
        let accounts = Accounts(stores: stores)
        let email = "bench@example.com"
        let user = try await accounts.createUser(email: email)
        let key = try await accounts.createAPIKey(userEmail: email).secret
        for index in 0..<topics {
            let seed = seedTopics[index % seedTopics.count]
            let round = index / seedTopics.count
            _ = try await stores.topics.createTopic(
                ownerID: user.id, name: round == 0 ? seed.name : "\(seed.name)\(round)", description: seed.description,
                examples: seed.examples.map { round == 0 ? $0 : "\($0) (\(round))" })
        }

        // The api node.
        let dependencies = APIDependencies(redis: redis, stores: stores, jobs: JobQueue(client: redis, logger: logger), limits: .disabled)
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let app = APIApplication.build(host: "127.0.0.1", port: 0, dependencies: dependencies, logger: logger) { channel in
            portContinuation.yield(channel.localAddress?.port ?? 0)
        }
        let server = Task { try await app.runService(gracefulShutdownSignals: []) }
        var portIterator = ports.makeAsyncIterator()
        guard let port = await portIterator.next(), port > 0 else { throw BenchError("the api did not start") }

        // The worker: the handlers `serve` registers, with the instant provider.
        var configuration = PipelineConfiguration()
        configuration.classifier.useEmbeddingRouter = router
        let pipeline = RoutingPipeline(provider: provider, stores: stores, redis: redis, configuration: configuration, logger: logger)
        try await pipeline.start()
        var registry = JobRegistry()
        PipelineJobs.register(in: &registry, pipeline: pipeline, stores: stores, redis: redis)
        let worker = try WorkerService(
            client: redis, registry: registry,
            configuration: WorkerConfiguration(workerID: "bench-worker", queues: [.ai, .delivery], concurrency: workerConcurrency, healthPort: 0),
            logger: logger)
        let workerTask = Task { try await worker.run() }

        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 1024)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
        let outcome: Result<Void, any Error>
        do {
            let base = "http://127.0.0.1:\(port)"
            let turnClient = TurnClient(http: client, base: base, key: key, mode: mode, chatID: try await createChat(client, base: base, key: key))
            for index in 0..<warmup { _ = try await turnClient.turn(index) }

            let ttft = try await providerTimeToFirstToken(samples: 200)
            var sequential: [TurnTiming] = []
            for index in 0..<turns { sequential.append(try await turnClient.turn(index)) }

            // Open loop: turn i is due at i/rate and timed from then, whatever the others do.
            let start = ContinuousClock.now
            let startDate = Date()
            let paced = try await withThrowingTaskGroup(of: TurnTiming.self) { group in
                for index in 0..<turns {
                    let due = start + .microseconds(Int64(Double(index) / rate * 1_000_000))
                    try await Task.sleep(until: due, clock: .continuous)
                    group.addTask { try await turnClient.turn(index, from: due) }
                }
                var all: [TurnTiming] = []
                for try await value in group { all.append(value) }
                return all
            }
            let elapsed = seconds(ContinuousClock.now - start)
            let firstEvent = mode == "post" ? "POST /api/v1/chats/{id}/messages + GET events" : "POST /api/v1/messages/stream"
            print("pipeline overhead per turn: \(firstEvent) → first `chunk` (live api + worker, Redis, MariaDB, instant provider, \(topics) topics seeded, embedding router \(router ? "on" : "off"))")
            print(String(format: "provider time to first token (scripted, in process): p50 %.3f ms (not subtracted)", percentile(ttft, 0.5)))
            print(line("1 turn at a time", sequential.map(\.firstChunk)))
            let accepted = sequential.compactMap(\.accepted)
            if !accepted.isEmpty { print(line("  of which: until the 202", accepted)) }
            print(line("  of which: until the first event (`started`)", sequential.map(\.firstEvent)))
            print(line(String(format: "open loop %.0f turns/s (achieved %.0f/s)", rate, Double(turns) / elapsed), paced.map(\.firstChunk)))
            if let timeline { try writeTimeline(paced, rate: rate, start: startDate, to: timeline) }
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        try? await client.shutdown()
        worker.beginStopping()
        workerTask.cancel()
        _ = await workerTask.result
        await pipeline.shutdown()
        server.cancel()
        _ = await server.result
        try outcome.get()
    }

    /// When, from the start of a turn, the client got the 202 (two-request mode), the first SSE
    /// event and the first `chunk`.
    struct TurnTiming: Sendable {
        var index: Int
        var accepted: Duration?
        var firstEvent: Duration
        var firstChunk: Duration
    }

    /// What a client does for one turn.
    struct TurnClient: Sendable {
        let http: HTTPClient
        let base: String
        let key: String
        let mode: String
        let chatID: Int64

        /// Time from `from` (now by default) to the first `chunk`; reads the stream to its end.
        func turn(_ index: Int, from: ContinuousClock.Instant? = nil) async throws -> TurnTiming {
            let started = from ?? .now
            let content = "Please explain how the tides of the ocean work, number \(index)"
            var request: HTTPClientRequest
            var accepted: Duration?
            if mode == "stream" {
                request = HTTPClientRequest(url: base + "/api/v1/messages/stream")
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(string: #"{"content":"\#(content)","chatId":\#(chatID)}"#))
            } else {
                var post = HTTPClientRequest(url: base + "/api/v1/chats/\(chatID)/messages")
                post.method = .POST
                post.headers.add(name: "Authorization", value: "Bearer \(key)")
                post.headers.add(name: "Content-Type", value: "application/json")
                post.body = .bytes(ByteBuffer(string: #"{"content":"\#(content)"}"#))
                let response = try await http.execute(post, timeout: .seconds(30))
                let body = try await response.body.collect(upTo: 1 << 16)
                guard response.status.code == 202, let events = try? JSONDecoder().decode(Accepted.self, from: Data(body.readableBytesView)).events
                else { throw BenchError("POST answered \(response.status.code): \(String(buffer: body))") }
                accepted = .now - started
                request = HTTPClientRequest(url: base + events)
            }
            request.headers.add(name: "Authorization", value: "Bearer \(key)")
            let response = try await http.execute(request, timeout: .seconds(30))
            guard response.status.code == 200 else { throw BenchError("events answered \(response.status.code)") }
            var lines = EventLines()
            var firstChunk: ContinuousClock.Instant?
            var firstEvent: ContinuousClock.Instant?
            var final: String?
            reading: for try await part in response.body {
                for type in lines.eventTypes(in: part) {
                    if firstEvent == nil { firstEvent = .now }
                    if firstChunk == nil, type == "chunk" { firstChunk = .now }
                    if type == "complete" || type == "error" {
                        final = type
                        break reading
                    }
                }
            }
            if final == "error" { throw BenchError("the turn failed") }
            guard let firstChunk, let firstEvent else { throw BenchError("no chunk in the stream (it ended with \(final ?? "nothing"))") }
            return TurnTiming(index: index, accepted: accepted, firstEvent: firstEvent - started, firstChunk: firstChunk - started)
        }
    }

    struct Accepted: Decodable { var events: String }

    /// The `event:` lines of an SSE byte stream, read as the bytes arrive (a line may span parts).
    struct EventLines {
        private var line: [UInt8] = []
        private static let prefix = Array("event: ".utf8)

        mutating func eventTypes(in part: ByteBuffer) -> [String] {
            var types: [String] = []
            for byte in part.readableBytesView {
                guard byte == UInt8(ascii: "\n") else {
                    line.append(byte)
                    continue
                }
                if line.starts(with: Self.prefix) { types.append(String(decoding: line.dropFirst(Self.prefix.count), as: UTF8.self)) }
                line.removeAll(keepingCapacity: true)
            }
            return types
        }
    }

    /// The open-loop turns in the order they were due, as CSV (milliseconds): when each was due
    /// (from the start, and as Unix time to line it up with other records) and how long it took
    /// to its 202, first event and first chunk. Shows whether slow turns come alone or together
    /// (a stall of the machine or of a server).
    static func writeTimeline(_ turns: [TurnTiming], rate: Double, start: Date, to path: String) throws {
        func ms(_ duration: Duration?) -> String { duration.map { String(format: "%.3f", seconds($0) * 1000) } ?? "" }
        var csv = "index,due_ms,due_unix_ms,accepted_ms,first_event_ms,first_chunk_ms\n"
        for turn in turns.sorted(by: { $0.index < $1.index }) {
            let due = Double(turn.index) / rate * 1000
            csv += "\(turn.index),\(String(format: "%.3f,%.3f", due, start.timeIntervalSince1970 * 1000 + due)),"
                + "\(ms(turn.accepted)),\(ms(turn.firstEvent)),\(ms(turn.firstChunk))\n"
        }
        try csv.write(toFile: path, atomically: true, encoding: .utf8)
    }

    static func createChat(_ client: HTTPClient, base: String, key: String) async throws -> Int64 {
        var request = HTTPClientRequest(url: base + "/api/v1/chats")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(key)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: #"{"title":"bench"}"#))
        let response = try await client.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 16)
        guard let chat = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
            let id = (chat["id"] as? NSNumber)?.int64Value
        else { throw BenchError("could not create a chat: \(String(buffer: body))") }
        return id
    }

    /// The scripted provider's own time from request to first token, for the record.
    static func providerTimeToFirstToken(samples: Int) async throws -> [Duration] {
        var values: [Duration] = []
        for _ in 0..<samples {
            let started = ContinuousClock.now
            let stream = try await provider.streamChat(ChatRequest(messages: [.user("hi")], slot: .chat))
            for try await event in stream {
                if case .token = event { break }
            }
            values.append(.now - started)
        }
        return values
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func percentile(_ values: [Duration], _ p: Double) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        let index = min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))
        return seconds(sorted[index]) * 1000
    }

    static func line(_ name: String, _ values: [Duration]) -> String {
        String(
            format: "%@: turns=%d p50=%.2f ms p99=%.2f ms max=%.2f ms", name, values.count, percentile(values, 0.5), percentile(values, 0.99),
            percentile(values, 1))
    }
}
