import Foundation
import Queue
import QueueTestJobs
import RedisClient
import TestSupport
import Testing

/// Worker processes against a real Redis: crashes, signals and sharing, counted in Redis.
/// Serialized: the visibility-timeout tests should not compete for two cores with 10,000 jobs.
@Suite("Worker processes", .serialized, .timeLimit(.minutes(3)))
struct WorkerProcessTests {
    @Test("a job runs once and is acknowledged")
    func jobRunsOnce() async throws {
        try await TestEnvironment.with { env in
            let worker = try env.spawnWorker(["--queues", "ai", "--visibility-timeout", "1"])
            let id = try await env.queue.enqueue(DiagnosticJobs.Sleep(tag: "once", milliseconds: 10), on: .ai)
            try await env.eventually("job done") { try await env.setSize("diag:once:done") == 1 }
            // Longer than the visibility timeout: an entry left pending would be run a second time.
            try await Task.sleep(for: .seconds(2.5))
            #expect(try await env.int("diag:once:completions") == 1)
            #expect(try await env.list("diag:once:starts").count == 1)
            #expect(try await env.depth(.ai) == 0)
            #expect(try await env.pending(.ai) == 0)
            #expect(try await env.client.send(RedisCommand("SISMEMBER", env.client.key("diag:once:done"), id.rawValue)).int == 1)
            #expect(try await worker.terminate() == 0)
        }
    }

    @Test("a failing job is retried with growing delays, lands in failed, and retry brings it back")
    func retriesThenFails() async throws {
        try await TestEnvironment.with { env in
            let worker = try env.spawnWorker([
                "--queues", "ai", "--max-retries", "2", "--backoff-base-ms", "300", "--promote-ms", "50",
            ])
            // Fails its first three runs; the worker allows three (1 + 2 retries).
            let id = try await env.queue.enqueue(DiagnosticJobs.Fail(tag: "flaky", failures: 3), on: .ai)
            try await env.eventually("job in failed") { try await env.failed.count() == 1 }
            #expect(try await env.int("diag:flaky:runs") == 3)
            let times = try await env.list("diag:flaky:at").compactMap { Int($0) }
            try #require(times.count == 3)
            let gaps = [times[1] - times[0], times[2] - times[1]]
            #expect(gaps[0] >= 300, "first retry waited \(gaps[0]) ms")
            #expect(gaps[1] >= 600, "second retry waited \(gaps[1]) ms")
            #expect(gaps[1] > gaps[0])

            let dead = try #require(try await env.failed.list(limit: 10).first)
            #expect(dead.jobID == id)
            #expect(dead.queue == .ai)
            #expect(dead.name == DiagnosticJobs.Fail.name)
            #expect(dead.attempts == 3)
            #expect(dead.error.contains("injected failure (run 3)"))
            #expect(dead.failedAt >= dead.firstEnqueuedAt)
            #expect(try await env.depth(.ai) == 0)
            #expect(try await env.pending(.ai) == 0)

            #expect(try await env.failed.retry(id.rawValue))
            try await env.eventually("retried job done") { try await env.setSize("diag:flaky:done") == 1 }
            #expect(try await env.int("diag:flaky:runs") == 4)
            #expect(try await env.failed.count() == 0)
            #expect(try await env.failed.retry(id.rawValue) == false)
            #expect(try await worker.terminate() == 0)
        }
    }

    @Test("a worker killed mid-job: another worker finishes the job after the visibility timeout")
    func sigkillMidJob() async throws {
        try await TestEnvironment.with { env in
            let first = try env.spawnWorker(["--queues", "ai", "--visibility-timeout", "2", "--worker-id", "first"])
            // Long enough that the first worker cannot finish it before it is killed, however
            // late a busy machine lets this test see that it started (a 3 s job once finished first).
            try await env.queue.enqueue(DiagnosticJobs.Sleep(tag: "crash", milliseconds: 8000), on: .ai)
            try await env.eventually("job started") { try await env.list("diag:crash:starts").count == 1 }
            first.signal(SIGKILL)
            _ = try await first.waitForExit()
            #expect(try await env.pending(.ai) == 1)

            let second = try env.spawnWorker(["--queues", "ai", "--visibility-timeout", "2", "--worker-id", "second"])
            try await env.eventually("job finished by the second worker", timeout: .seconds(30)) {
                try await env.int("diag:crash:completions") == 1
            }
            let starts = try await env.list("diag:crash:starts").map { $0.split(separator: " ").map(String.init) }
            try #require(starts.count == 2)
            #expect(starts[0][0] == "first")
            #expect(starts[1][0] == "second")
            #expect(starts[1][1] == "2", "attempt seen by the second worker")
            #expect(starts[1][2] == "2", "delivery count seen by the second worker")
            try await env.eventually("acknowledged") { try await env.depth(.ai) == 0 }
            #expect(try await env.pending(.ai) == 0)
            #expect(try await second.terminate() == 0)
        }
    }

    @Test("SIGTERM mid-job: the job completes and the process exits 0")
    func sigtermMidJob() async throws {
        try await TestEnvironment.with { env in
            let worker = try env.spawnWorker(["--queues", "ai", "--grace", "20"])
            try await env.queue.enqueue(DiagnosticJobs.Sleep(tag: "term", milliseconds: 1500), on: .ai)
            try await env.eventually("job started") { try await env.list("diag:term:starts").count == 1 }
            #expect(try await worker.terminate() == 0)
            #expect(try await env.int("diag:term:completions") == 1)
            #expect(try await env.depth(.ai) == 0)
            #expect(try await env.pending(.ai) == 0)
        }
    }

    @Test("SIGTERM past the grace period: the job stays pending and another worker runs it")
    func sigtermPastGrace() async throws {
        try await TestEnvironment.with { env in
            let first = try env.spawnWorker(["--queues", "ai", "--grace", "0.5", "--visibility-timeout", "2"])
            try await env.queue.enqueue(DiagnosticJobs.Sleep(tag: "slow", milliseconds: 4000), on: .ai)
            try await env.eventually("job started") { try await env.list("diag:slow:starts").count == 1 }
            #expect(try await first.terminate() == 0)
            #expect(try await env.int("diag:slow:completions") == 0)
            #expect(try await env.pending(.ai) == 1)

            let second = try env.spawnWorker(["--queues", "ai", "--visibility-timeout", "2"])
            try await env.eventually("job finished by the second worker", timeout: .seconds(30)) {
                try await env.int("diag:slow:completions") == 1
            }
            #expect(try await env.list("diag:slow:starts").count == 2)
            #expect(try await second.terminate() == 0)
        }
    }

    @Test("two worker processes share 10,000 jobs, each executed exactly once")
    func twoWorkersShareTenThousand() async throws {
        try await TestEnvironment.with { env in
            let workers = try ["a", "b"].map {
                try env.spawnWorker(["--queues", "index", "--concurrency", "16", "--worker-id", $0])
            }
            try await env.waitForWorkers(2)
            let jobs = Array(repeating: DiagnosticJobs.Mark(tag: "share"), count: 1000)
            var ids = Set<JobID>()
            for _ in 0..<10 { ids.formUnion(try await env.queue.enqueue(contentsOf: jobs, on: .index)) }
            #expect(ids.count == 10_000)
            try await env.eventually("all jobs done", timeout: .seconds(150)) {
                try await env.setSize("diag:share:done") == 10_000
            }
            try await env.eventually("all acknowledged") { try await env.depth(.index) == 0 }
            #expect(try await env.int("diag:share:runs") == 10_000)
            #expect(try await env.pending(.index) == 0)
            let perWorker = try await env.client.hgetall("diag:share:workers").mapValues { Int(String(decoding: $0, as: UTF8.self)) ?? 0 }
            #expect(perWorker.values.reduce(0, +) == 10_000)
            #expect((perWorker["a"] ?? 0) > 0 && (perWorker["b"] ?? 0) > 0, "both workers took jobs: \(perWorker)")
            for worker in workers { #expect(try await worker.terminate() == 0) }
        }
    }

    @Test("Redis restarted mid-run (AOF, fsync always): workers reconnect and every job completes")
    func redisRestart() async throws {
        let redis = try await PrivateRedisServer(extraArguments: ["--appendonly", "yes", "--appendfsync", "always"])
        do {
            try await TestEnvironment.with(url: redis.url) { env in
                let workers = try ["a", "b"].map {
                    try env.spawnWorker(["--queues", "ai", "--concurrency", "8", "--visibility-timeout", "2", "--worker-id", $0])
                }
                try await env.waitForWorkers(2)
                let total = 1500
                var ids: [JobID] = []
                for _ in 0..<3 {
                    ids += try await env.queue.enqueue(
                        contentsOf: Array(repeating: DiagnosticJobs.Sleep(tag: "restart", milliseconds: 10), count: total / 3), on: .ai)
                }
                try await env.eventually("a third done before the restart") {
                    try await env.setSize("diag:restart:done") >= total / 3
                }
                await redis.kill()
                try await Task.sleep(for: .seconds(1))
                try await redis.start()
                do {
                    try await env.eventually("every job done after the restart", timeout: .seconds(90)) {
                        try await env.setSize("diag:restart:done") == total
                    }
                } catch {
                    let done = (try? await env.setSize("diag:restart:done")) ?? -1
                    // Where the missing jobs are: still queued, pending, delayed, failed, or nowhere.
                    let doneIDs = Set(
                        ((try? await env.client.send(RedisCommand("SMEMBERS", env.client.key("diag:restart:done"))))?.array ?? [])
                            .compactMap(\.string))
                    let missing = ids.map(\.rawValue).filter { !doneIDs.contains($0) }
                    let depth = (try? await env.depth(.ai)) ?? -1
                    let pending = (try? await env.client.send(
                        RedisCommand("XPENDING", env.client.key("queue:ai"), "workers", "-", "+", 20))).map { "\($0)" } ?? "?"
                    let delayed = (try? await env.client.send(
                        RedisCommand("ZRANGE", env.client.key("queue:ai:delayed"), 0, 5, "WITHSCORES"))).map { "\($0)" } ?? "?"
                    let failed = (try? await env.failed.count()) ?? -1
                    let completions = (try? await env.int("diag:restart:completions")) ?? -1
                    let starts = (try? await env.client.send(RedisCommand("LLEN", env.client.key("diag:restart:starts"))))?.int ?? -1
                    Issue.record(
                        """
                        done \(done)/\(total); missing \(missing.prefix(10)); stream depth \(depth); pending \(pending); \
                        delayed \(delayed); failed \(failed); completions \(completions); starts \(starts)
                        worker a: \(workers[0].log.suffix(4000))
                        worker b: \(workers[1].log.suffix(4000))
                        """)
                    throw error
                }
                try await env.eventually("all acknowledged", timeout: .seconds(30)) {
                    let depth = try await env.depth(.ai)
                    let pending = try await env.pending(.ai)
                    return depth == 0 && pending == 0
                }
                for worker in workers { #expect(try await worker.terminate() == 0) }
            }
        } catch {
            await redis.destroy()
            throw error
        }
        await redis.destroy()
    }
}
