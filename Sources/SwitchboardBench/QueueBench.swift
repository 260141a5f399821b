// `switchboard-bench queue worker|bench`: the worker harness that the queue tests drive as a real
// process (diagnostic jobs only), and the queue throughput/latency benchmark.
import Foundation
import Logging
import Queue
import QueueTestJobs
import RedisClient
import SwitchboardCore

enum QueueBench {
    static func run(_ arguments: [String]) async throws {
        guard let command = arguments.first else { throw UsageError(usage) }
        let options = try Options(Array(arguments.dropFirst()))
        switch command {
        case "worker": try await runWorker(options)
        case "bench": try await runBenchmark(options)
        default: throw UsageError(usage)
        }
    }

    static let usage = """
        usage: switchboard-bench queue worker --redis URL --prefix P [--queues q1,q2] [--concurrency N]
                   [--job-timeout S] [--max-retries N] [--visibility-timeout S] [--grace S] [--batch N]
                   [--block-ms N] [--backoff-base-ms N] [--promote-ms N] [--health-port N] [--worker-id ID]
                   [--latency-out FILE] [--count-executed 1] [--log-level LEVEL]
               switchboard-bench queue bench [--redis URL] [--jobs N] [--concurrency N] [--batch N]
                   [--workers 1,2] [--latency-rate N] [--latency-seconds S] [--inject-failures N]
        """

    static func redisClient(_ options: Options, prefix: String, logger: Logger) throws -> RedisClient {
        let url = options.string("redis") ?? ProcessInfo.processInfo.environment["SB_TEST_REDIS_URL"] ?? "redis://127.0.0.1:6380/0"
        var configuration = try RedisConfiguration(url: url)
        configuration.keyPrefix = prefix
        return RedisClient(configuration: configuration, logger: logger)
    }

    static func seconds(_ value: Double) -> Duration { .milliseconds(Int64((value * 1000).rounded())) }

    // MARK: worker harness

    static func runWorker(_ options: Options) async throws {
        var logger = Logger(label: "switchboard-bench.queue.worker")
        logger.logLevel = Logger.Level(rawValue: options.string("log-level") ?? "warning") ?? .warning
        guard let prefix = options.string("prefix") else { throw UsageError("worker needs --prefix") }
        let client = try redisClient(options, prefix: prefix, logger: logger)

        var configuration = WorkerConfiguration()
        if let id = options.string("worker-id") { configuration.workerID = id }
        if let queues = options.string("queues") {
            configuration.queues = try queues.split(separator: ",").map { try QueueName.parse(String($0)) }
        }
        if let n = try options.int("concurrency") { configuration.concurrency = n }
        if let s = try options.double("job-timeout") { configuration.jobTimeout = seconds(s) }
        if let n = try options.int("max-retries") { configuration.maxRetries = n }
        if let s = try options.double("visibility-timeout") { configuration.visibilityTimeout = seconds(s) }
        if let s = try options.double("grace") { configuration.gracePeriod = seconds(s) }
        if let n = try options.int("batch") { configuration.batchSize = n }
        if let n = try options.int("block-ms") { configuration.blockTime = .milliseconds(n) }
        if let n = try options.int("promote-ms") { configuration.promoteInterval = .milliseconds(n) }
        if let n = try options.int("backoff-base-ms") { configuration.retryPolicy.baseDelay = .milliseconds(n) }
        let healthPort = try options.int("health-port")
        if let healthPort { configuration.healthPort = healthPort }

        let latency = options.string("latency-out").map { _ in DiagnosticJobs.LatencyRecorder() }
        let executed = options.string("count-executed").map { _ in DiagnosticJobs.ExecutionCounter() }
        var registry = JobRegistry()
        DiagnosticJobs.register(in: &registry, client: client, latency: latency, executed: executed)
        let worker = try WorkerService(client: client, registry: registry, configuration: configuration, logger: logger)
        // This process's executed no-ops, published every 20 ms to `diag:executed:<worker id>`.
        let executedKey = "diag:executed:\(configuration.workerID)"
        let reporter = executed.map { counter in
            Task {
                while !Task.isCancelled {
                    _ = try? await client.set(executedKey, "\(counter.value)")
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
        }
        // Tells a test or the benchmark that this process is up and reaches Redis.
        _ = try await client.incr("diag:ready")
        try await worker.runUntilTerminated(healthServer: healthPort != nil) { port in
            FileHandle.standardOutput.write(Data("health listening on \(port)\n".utf8))
        }
        reporter?.cancel()
        if let executed { _ = try? await client.set(executedKey, "\(executed.value)") }
        if let path = options.string("latency-out"), let latency {
            let text = latency.values.map(String.init).joined(separator: "\n")
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        }
        await client.close()
    }

    // MARK: benchmark

    static func runBenchmark(_ options: Options) async throws {
        var logger = Logger(label: "switchboard-bench.queue")
        logger.logLevel = .warning
        let jobs = try options.int("jobs") ?? 200_000
        let concurrency = try options.int("concurrency") ?? 64
        let batch = try options.int("batch") ?? 256
        let workerCounts = try (options.string("workers") ?? "1,2").split(separator: ",").map { value -> Int in
            guard let n = Int(value), n > 0 else { throw UsageError("bad --workers \(value)") }
            return n
        }
        let latencyRate = try options.int("latency-rate") ?? 1000
        let latencySeconds = try options.double("latency-seconds") ?? 5
        // Jobs that always fail, mixed into the measured batch: shows that the run then fails.
        let injectedFailures = try options.int("inject-failures") ?? 0
        let url = options.string("redis") ?? ProcessInfo.processInfo.environment["SB_TEST_REDIS_URL"] ?? "redis://127.0.0.1:6380/0"

        for workers in workerCounts {
            let prefix = "sbbench:\(UInt32.random(in: 0...UInt32.max)):"
            let client = try redisClient(options, prefix: prefix, logger: logger)
            let queue = JobQueue(client: client, logger: logger)
            let processes = try (0..<workers).map { index in
                try spawnWorker(url: url, prefix: prefix, arguments: [
                    "--queues", "bench", "--concurrency", "\(concurrency)", "--batch", "\(batch)",
                    "--worker-id", "bench-\(index)", "--count-executed", "1", "--max-retries", "0",
                ])
            }
            let workerIDs = (0..<workers).map { "bench-\($0)" }
            try await waitForConsumers(client, count: workers)
            // Warm-up: connections, script cache, allocator.
            let warmUp = min(20_000, jobs / 10 + 1)
            try await produce(queue, count: warmUp, producers: 1)
            _ = try await waitUntilExecuted(client, workers: workerIDs, expected: warmUp)

            let clock = ContinuousClock()
            let started = clock.now
            try await produce(queue, count: jobs, producers: 2)
            if injectedFailures > 0 {
                try await queue.enqueue(
                    contentsOf: Array(repeating: DiagnosticJobs.Fail(tag: "bench", failures: -1), count: injectedFailures), on: "bench")
            }
            let enqueued = clock.now - started
            let executed = try await waitUntilExecuted(client, workers: workerIDs, expected: warmUp + jobs)
            let elapsed = secondsOf(clock.now - started)
            let failed = try await client.xlen(QueueBench.failedStream)
            emit(String(
                format: "queue.noop workers=%d concurrency=%d jobs=%d executed=%d failed=%d seconds=%.3f jobs_per_sec=%.0f enqueue_seconds=%.3f",
                workers, concurrency, jobs, executed - warmUp, failed, elapsed, Double(jobs) / elapsed, secondsOf(enqueued)))
            try await stop(processes)
            _ = try await client.del(
                ["queue:bench", "queue:bench:delayed", "diag:ready", QueueBench.failedStream, "diag:bench:runs", "diag:bench:at"] + workerIDs.map { "diag:executed:\($0)" })
            await client.close()
            if executed != warmUp + jobs || failed > 0 {
                throw UsageError("FAIL: \(executed - warmUp) of \(jobs) jobs executed, \(failed) failed")
            }
        }

        // Latency at a steady rate well below saturation: enqueue → handler start.
        let prefix = "sbbench:\(UInt32.random(in: 0...UInt32.max)):"
        let client = try redisClient(options, prefix: prefix, logger: logger)
        let queue = JobQueue(client: client, logger: logger)
        let latencyFile = FileManager.default.temporaryDirectory.appendingPathComponent("sb-queue-latency-\(getpid()).txt")
        let process = try spawnWorker(url: url, prefix: prefix, arguments: [
            "--queues", "bench", "--concurrency", "\(concurrency)", "--batch", "\(batch)", "--latency-out", latencyFile.path,
        ])
        try await waitForConsumers(client, count: 1)
        let ticks = Int(latencySeconds * 100)
        let perTick = max(1, latencyRate / 100)
        let tickStart = ContinuousClock.now
        for tick in 0..<ticks {
            try await queue.enqueue(contentsOf: Array(repeating: DiagnosticJobs.Noop(), count: perTick), on: "bench")
            try await Task.sleep(until: tickStart + .milliseconds(10 * (tick + 1)), clock: .continuous)
        }
        try await waitUntilDrained(client)
        try await stop([process])
        let samples = (try String(contentsOf: latencyFile, encoding: .utf8)).split(separator: "\n").compactMap { Int64($0) }.sorted()
        try? FileManager.default.removeItem(at: latencyFile)
        _ = try await client.del(["queue:bench", "queue:bench:delayed", "diag:ready"])
        await client.close()
        guard !samples.isEmpty else { throw UsageError("no latency samples recorded") }
        func percentile(_ p: Double) -> Double { Double(samples[min(samples.count - 1, Int(Double(samples.count) * p))]) / 1000 }
        emit(String(
            format: "queue.latency rate_per_sec=%d jobs=%d p50_ms=%.3f p99_ms=%.3f max_ms=%.3f",
            perTick * 100, samples.count, percentile(0.5), percentile(0.99), Double(samples.last!) / 1000))
    }

    static func produce(_ queue: JobQueue, count: Int, producers: Int) async throws {
        let chunk = 1000
        try await withThrowingTaskGroup(of: Void.self) { group in
            for producer in 0..<producers {
                let share = count / producers + (producer < count % producers ? 1 : 0)
                group.addTask {
                    var left = share
                    while left > 0 {
                        let n = min(chunk, left)
                        try await queue.enqueue(contentsOf: Array(repeating: DiagnosticJobs.Noop(), count: n), on: "bench")
                        left -= n
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    static let failedStream = "queue:failed"

    /// Waits until the workers have executed `expected` no-ops (the sum of their published
    /// counters), or until nothing is left to run (stream, pending and delayed set empty) and the
    /// counters have stopped moving; answers the executed count either way.
    static func waitUntilExecuted(_ client: RedisClient, workers: [String], expected: Int) async throws -> Int {
        var last = -1
        var still = 0
        while true {
            var executed = 0
            for worker in workers {
                if let value = try await client.get("diag:executed:\(worker)"), let n = Int(String(decoding: value, as: UTF8.self)) {
                    executed += n
                }
            }
            if executed >= expected { return executed }
            let depth = try await client.xlen("queue:bench")
            let delayed = try await client.zcard("queue:bench:delayed")
            let idle = depth == 0 && delayed == 0
            still = idle && executed == last ? still + 1 : 0
            // 100 ms idle with no movement: five counter publications since the last job ran.
            if still >= 50 { return executed }
            last = executed
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    static func waitUntilDrained(_ client: RedisClient) async throws {
        while try await client.xlen("queue:bench") > 0 {
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    static func waitForConsumers(_ client: RedisClient, count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let ready = try? await client.get("diag:ready"), let n = Int(String(decoding: ready, as: UTF8.self)), n >= count {
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw UsageError("workers did not start within 30 s")
    }

    static func spawnWorker(url: String, prefix: String, arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = ["queue", "worker", "--redis", url, "--prefix", prefix] + arguments
        try process.run()
        return process
    }

    static func stop(_ processes: [Process]) async throws {
        for process in processes { kill(process.processIdentifier, SIGTERM) }
        for process in processes {
            while process.isRunning { try await Task.sleep(for: .milliseconds(10)) }
            if process.terminationStatus != 0 { throw UsageError("worker exited with \(process.terminationStatus)") }
        }
    }
}

extension QueueBench {
    static func secondsOf(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    struct UsageError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// `--name value` pairs.
    struct Options {
        private var values: [String: String] = [:]

        init(_ arguments: [String]) throws {
            var index = 0
            while index < arguments.count {
                let argument = arguments[index]
                guard argument.hasPrefix("--"), index + 1 < arguments.count else { throw UsageError("unexpected argument \(argument)") }
                values[String(argument.dropFirst(2))] = arguments[index + 1]
                index += 2
            }
        }

        func string(_ name: String) -> String? { values[name] }

        func int(_ name: String) throws -> Int? {
            guard let value = values[name] else { return nil }
            guard let n = Int(value) else { throw UsageError("--\(name) wants an integer, got \(value)") }
            return n
        }

        func double(_ name: String) throws -> Double? {
            guard let value = values[name] else { return nil }
            guard let n = Double(value) else { throw UsageError("--\(name) wants a number, got \(value)") }
            return n
        }
    }
}

extension QueueBench {
    /// Unbuffered, so a script reading the output sees each result as it is measured.
    static func emit(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}
