import Foundation
import Logging
import Queue
import QueueTestJobs
import RedisClient
import SwitchboardCore
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The queue API and an in-process worker against a real Redis.
@Suite("Queue API", .serialized, .timeLimit(.minutes(2)))
struct QueueAPITests {
    static func fastConfiguration(
        _ queues: [QueueName] = [.ai], visibilityTimeout: Duration = .seconds(2)
    ) -> WorkerConfiguration {
        WorkerConfiguration(
            workerID: "test-\(UInt32.random(in: 0...UInt32.max))", queues: queues, concurrency: 4,
            visibilityTimeout: visibilityTimeout, gracePeriod: .seconds(5), healthPort: 0, blockTime: .milliseconds(200),
            promoteInterval: .milliseconds(50))
    }

    @Test("the same idempotency key enqueued twice gives one job and one execution")
    func idempotencyKey() async throws {
        try await TestEnvironment.with { env in
            let options = EnqueueOptions(idempotencyKey: "message-42")
            let first = try await env.queue.enqueue(DiagnosticJobs.Mark(tag: "idem"), on: .ai, options: options)
            let second = try await env.queue.enqueue(DiagnosticJobs.Mark(tag: "idem"), on: .ai, options: options)
            #expect(first == second)
            #expect(try await env.depth(.ai) == 1)
            let other = try await env.queue.enqueue(
                DiagnosticJobs.Mark(tag: "idem"), on: .ai, options: EnqueueOptions(idempotencyKey: "message-43"))
            #expect(other != first)

            // Counts runs of the key, not takeovers: a stall of the loaded machine past a short
            // visibility timeout must not let the reclaimer run a job again.
            let (worker, task) = try env.startWorker(Self.fastConfiguration(visibilityTimeout: .seconds(30)))
            try await env.eventually("both distinct jobs done") { try await env.setSize("diag:idem:done") == 2 }
            try await env.eventually("acknowledged") { try await env.depth(.ai) == 0 }
            #expect(try await env.int("diag:idem:runs") == 2)
            // Still deduplicated after the first job finished (the key outlives the job).
            let again = try await env.queue.enqueue(DiagnosticJobs.Mark(tag: "idem"), on: .ai, options: options)
            #expect(again == first)
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await env.int("diag:idem:runs") == 2)
            worker.beginStopping()
            try await task.value
        }
    }

    @Test("a delayed job does not run before its time")
    func delayedJob() async throws {
        try await TestEnvironment.with { env in
            let (worker, task) = try env.startWorker(Self.fastConfiguration())
            let enqueuedAt = Int((Date().timeIntervalSince1970 * 1000).rounded(.down))
            try await env.queue.enqueue(
                DiagnosticJobs.Sleep(tag: "later", milliseconds: 0), on: .ai, options: EnqueueOptions(delay: .milliseconds(1500)))
            let delayed = try await env.client.zcard("queue:ai:delayed")
            let depth = try await env.depth(.ai)
            // Both read before the job's time (a loaded machine can take longer to get here): it
            // waits in the delayed set, not on the stream.
            if Int((Date().timeIntervalSince1970 * 1000).rounded(.down)) - enqueuedAt < 1500 {
                #expect(delayed == 1)
                #expect(depth == 0)
            }
            try await env.eventually("delayed job done") { try await env.int("diag:later:completions") == 1 }
            let start = try #require(try await env.list("diag:later:starts").first?.split(separator: " ").last.flatMap { Int($0) })
            #expect(start - enqueuedAt >= 1500, "ran \(start - enqueuedAt) ms after enqueue")
            #expect(try await env.client.zcard("queue:ai:delayed") == 0)
            worker.beginStopping()
            try await task.value
        }
    }

    @Test("an error reply in a diagnostic job's pipeline fails the run instead of acknowledging it")
    func diagnosticPipelineErrorFailsTheRun() async throws {
        // Stands in for the -LOADING replies Redis sends right after a restart: pipelined replies
        // come back as `.error` values, which the Sleep job used to ignore (its job was then
        // acknowledged without ever being recorded as done — the "lost" job of redisRestart).
        try await TestEnvironment.with { env in
            try await env.client.set("diag:pipe:done", Array("not a set".utf8))
            var configuration = Self.fastConfiguration()
            configuration.maxRetries = 0
            let (worker, task) = try env.startWorker(configuration)
            try await env.queue.enqueue(DiagnosticJobs.Sleep(tag: "pipe", milliseconds: 0), on: .ai)
            try await env.eventually("the run failed and went to failed") { try await env.failed.count() == 1 }
            let failed = try await env.failed.list()
            #expect(failed.first?.error.contains("WRONGTYPE") == true, "\(failed)")
            try await env.eventually("taken out of the stream") { try await env.depth(.ai) == 0 }
            worker.beginStopping()
            try await task.value
        }
    }

    @Test("a job whose handler throws a permanent error goes to failed at once; purge empties failed")
    func permanentErrorAndPurge() async throws {
        struct Rejected: PermanentJobError {}
        struct Bad: JobPayload { static let name = "test.bad" }
        try await TestEnvironment.with { env in
            var registry = JobRegistry()
            registry.register(Bad.self) { _, _ in throw Rejected() }
            var configuration = Self.fastConfiguration()
            configuration.maxRetries = 1
            configuration.retryPolicy.baseDelay = .milliseconds(50)
            let worker = try WorkerService(client: env.client, registry: registry, configuration: configuration)
            let task = Task { try await worker.run() }
            try await env.queue.enqueue(Bad(), on: .ai)
            // No handler for this one here: retried like any failure, then failed.
            try await env.queue.enqueue(DiagnosticJobs.Noop(), on: .ai)
            try await env.eventually("both in failed") { try await env.failed.count() == 2 }
            let failed = try await env.failed.list()
            #expect(Set(failed.map(\.attempts)) == [1, 2])
            #expect(failed.contains { $0.name == "diag.noop" && $0.error.contains("unknownJob") })
            // The worker counts a failure once Redis has it in failed, so the count may lag the list.
            try await env.eventually("both counted") { worker.metrics.snapshot()[.ai]?.failed == 2 }
            #expect(try await env.failed.purge() == 2)
            #expect(try await env.failed.count() == 0)
            worker.beginStopping()
            try await task.value
        }
    }

    @Test("retryAll requeues every failed job on its own queue")
    func retryAll() async throws {
        try await TestEnvironment.with { env in
            var configuration = Self.fastConfiguration([.ai, .delivery])
            configuration.maxRetries = 0
            let (worker, task) = try env.startWorker(configuration)
            try await env.queue.enqueue(DiagnosticJobs.Fail(tag: "a", failures: 1), on: .ai)
            try await env.queue.enqueue(DiagnosticJobs.Fail(tag: "d", failures: 1), on: .delivery)
            try await env.eventually("both failed once") { try await env.failed.count() == 2 }
            #expect(try await env.failed.retryAll() == 2)
            try await env.eventually("both done") {
                let a = try await env.setSize("diag:a:done")
                let d = try await env.setSize("diag:d:done")
                return a == 1 && d == 1
            }
            #expect(try await env.failed.count() == 0)
            worker.beginStopping()
            try await task.value
        }
    }

    /// A job that keeps running after its worker is cancelled (it ignores cancellation).
    struct Stubborn: JobPayload { static let name = "test.stubborn"; var tag: String }

    @Test("two workers cancelled while their jobs ignore cancellation both shut down")
    func cancelledWorkersDoNotStarveEachOther() async throws {
        // A cancelled worker once spun its acknowledgement loop on a cooperative thread until
        // shutdown finished; two of them took both threads of a 2-core machine, and then nothing
        // (not even the jobs they waited for) could run again: the test process hung.
        try await TestEnvironment.with { env in
            var registry = JobRegistry()
            registry.register(Stubborn.self) { job, _ in
                _ = try? await env.client.send(RedisCommand("INCR", env.client.key("stubborn:\(job.tag):started")))
                await Task { try? await Task.sleep(for: .milliseconds(500)) }.value
            }
            var configuration = Self.fastConfiguration()
            configuration.concurrency = 1
            let workers = try (0..<2).map { _ in
                var own = configuration
                own.workerID = "test-\(UInt32.random(in: 0...UInt32.max))"
                var logger = Logger(label: "queue-tests.worker")
                logger.logLevel = .warning
                return try WorkerService(client: env.client, registry: registry, configuration: own, logger: logger)
            }
            let tasks = workers.map { worker in Task { try await worker.run() } }
            for _ in 0..<2 { try await env.queue.enqueue(Stubborn(tag: "s"), on: .ai) }
            try await env.eventually("both jobs running") { try await env.int("stubborn:s:started") == 2 }
            for task in tasks { task.cancel() }
            for task in tasks { _ = await task.result }
            #expect(workers.allSatisfy { $0.activeJobs == 0 })
        }
    }

    @Test(
        "an idle worker woken by jobs on every queue at once claims no more entries than it has slots",
        arguments: [4, 3])  // 4 slots: one blocking read claims one per queue; 3: no slot would be left over, it waits without claiming
    func anIdleWorkerClaimsNoMoreThanItsSlots(concurrency: Int) async throws {
        try await TestEnvironment.with { env in
            var configuration = Self.fastConfiguration([.ai, .extract, .index])
            configuration.concurrency = concurrency
            let (worker, task) = try env.startWorker(configuration)
            // Idle: past its first sweeps and waiting.
            try await Task.sleep(for: .milliseconds(300))
            for queue in [QueueName.ai, .extract, .index] {
                for _ in 0..<2 { try await env.queue.enqueue(DiagnosticJobs.Sleep(tag: "burst", milliseconds: 800), on: queue) }
            }
            try await env.eventually("every slot busy") { try await env.list("diag:burst:starts").count == concurrency }
            var claimed = 0
            for queue in [QueueName.ai, .extract, .index] { claimed += try await env.pending(queue) }
            #expect(claimed == concurrency, "entries claimed while every slot runs a job")
            try await env.eventually("all six done") { try await env.setSize("diag:burst:done") == 6 }
            worker.beginStopping()
            _ = await task.result
        }
    }

    @Test("GET /health and /metrics report the worker and its queues")
    func healthAndMetrics() async throws {
        try await TestEnvironment.with { env in
            let (worker, task) = try env.startWorker(Self.fastConfiguration())
            let port = PortBox()
            let server = WorkerHealthServer(worker: worker) { await port.set($0) }
            let serverTask = Task { try await server.run() }
            try await env.queue.enqueue(DiagnosticJobs.Mark(tag: "m"), on: .ai)
            try await env.eventually("job done") { try await env.setSize("diag:m:done") == 1 }
            // The handler's mark lands before the worker frees the slot and writes the ack.
            try await env.eventually("job finished and acknowledged") {
                let pending = try await env.pending(.ai)
                return worker.activeJobs == 0 && pending == 0
            }
            try await env.eventually("server listening") { await port.value != nil }
            let base = "http://127.0.0.1:\(await port.value!)"

            let (healthData, healthResponse) = try await URLSession.shared.data(from: URL(string: "\(base)/health")!)
            #expect((healthResponse as? HTTPURLResponse)?.statusCode == 200)
            let health = try JSONSerialization.jsonObject(with: healthData) as? [String: Any]
            #expect(health?["status"] as? String == "ok")
            #expect(health?["worker_id"] as? String == worker.configuration.workerID)
            #expect(health?["active_jobs"] as? Int == 0)
            #expect(health?["hostname"] as? String == WorkerConfiguration.hostName())
            #expect(health?["uptime"] is Double || health?["uptime"] is Int)

            let (metricsData, _) = try await URLSession.shared.data(from: URL(string: "\(base)/metrics")!)
            let metrics = String(decoding: metricsData, as: UTF8.self)
            #expect(metrics.contains("# TYPE switchboard_queue_depth gauge"))
            #expect(metrics.contains("switchboard_queue_depth{queue=\"ai\"} 0"))
            #expect(metrics.contains("switchboard_queue_pending{queue=\"ai\"} 0"))
            #expect(metrics.contains("switchboard_queue_oldest_age_seconds{queue=\"ai\"} 0"))
            #expect(metrics.contains("switchboard_jobs_processed_total{queue=\"ai\"} 1"))
            #expect(metrics.contains("# TYPE switchboard_job_duration_seconds histogram"))
            #expect(metrics.contains("switchboard_job_duration_seconds_bucket{queue=\"ai\",le=\"+Inf\"} 1"))
            #expect(metrics.contains("switchboard_job_duration_seconds_count{queue=\"ai\"} 1"))

            serverTask.cancel()
            _ = try? await serverTask.value
            worker.beginStopping()
            try await task.value
        }
    }

    @Test("queue stats show depth, delayed jobs and the age of the oldest entry")
    func stats() async throws {
        try await TestEnvironment.with { env in
            try await env.queue.enqueue(DiagnosticJobs.Noop(), on: .extract)
            try await env.queue.enqueue(DiagnosticJobs.Noop(), on: .extract, options: EnqueueOptions(delay: .seconds(60)))
            try await Task.sleep(for: .milliseconds(50))
            let stats = try await env.queue.stats(for: .extract)
            #expect(stats.depth == 1)
            #expect(stats.pending == 0)
            #expect(stats.delayed == 1)
            #expect(stats.oldestAge >= .milliseconds(40))
        }
    }

    @Test("enqueueing on the failed queue is refused")
    func failedIsNotAWorkQueue() async throws {
        try await TestEnvironment.with { env in
            await #expect(throws: QueueError.self) { try await env.queue.enqueue(DiagnosticJobs.Noop(), on: .failed) }
        }
    }
}

actor PortBox {
    var value: Int?
    func set(_ port: Int) { value = port }
}

/// Pure logic, no server.
@Suite("Queue units")
struct QueueUnitTests {
    @Test("backoff grows exponentially, is capped, and jitter only stretches it")
    func backoff() {
        let policy = RetryPolicy(baseDelay: .milliseconds(100), factor: 2, maxDelay: .seconds(1), jitter: .proportional(0.2))
        #expect(policy.delay(afterAttempt: 1, random: 0) == .milliseconds(100))
        #expect(policy.delay(afterAttempt: 2, random: 0) == .milliseconds(200))
        #expect(policy.delay(afterAttempt: 3, random: 1) == .milliseconds(480))
        #expect(policy.delay(afterAttempt: 10, random: 0) == .seconds(1))
    }

    @Test("queue names are validated")
    func queueNames() {
        #expect(QueueName(rawValue: "ai") == .ai)
        #expect(QueueName(rawValue: "Bad Name") == nil)
        #expect(QueueName(rawValue: "") == nil)
        #expect(throws: QueueError.self) { try QueueName.parse("a:b") }
    }

    @Test("worker configuration rejects what cannot work")
    func configuration() {
        #expect(throws: QueueError.self) { try WorkerConfiguration(queues: [.failed]).validate() }
        #expect(throws: QueueError.self) { try WorkerConfiguration(concurrency: 0).validate() }
        #expect(throws: QueueError.self) { try WorkerConfiguration(queues: []).validate() }
        #expect(throws: Never.self) { try WorkerConfiguration().validate() }
        #expect(WorkerConfiguration().workerID.hasSuffix("-\(getpid())"))
    }

    @Test("payload versions newer than the worker's are rejected, older ones decoded")
    func payloadVersions() throws {
        struct V2: JobPayload {
            static let name = "test.v2"
            static let version = 2
            var text: String
        }
        let data = Array(#"{"text":"hi"}"#.utf8)
        #expect(try V2.decode(data, version: 1).text == "hi")
        #expect(throws: QueueError.self) { try V2.decode(data, version: 3) }
    }
}
