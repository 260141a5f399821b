import Foundation
import Queue
import SwitchboardCore
import Testing

/// The worker runtime's behaviour on the in-memory driver: no Redis, fast.
@Suite("Worker logic (memory driver)", .timeLimit(.minutes(1)))
struct WorkerLogicTests {
    @Test("running jobs never exceed the concurrency slots, across several queues")
    func slotsAreNeverExceeded() async throws {
        let driver = MemoryJobQueueDriver()
        let recorder = Recorder()
        let queues: [QueueName] = [.ai, .extract, .index]
        for index in 0..<30 { try await driver.enqueue(Nap(milliseconds: 15), on: queues[index % 3]) }
        let (worker, task) = try Logic.start(
            driver, registry: .logic(recorder), configuration: Logic.configuration(queues: queues, concurrency: 4))
        try await Logic.eventually("all 30 done") { recorder.completed == 30 }
        #expect(recorder.peak == 4, "at most 4 at once, and all 4 used")
        try await Logic.eventually("acknowledged") { queues.allSatisfy { driver.pendingCount($0) == 0 } }
        #expect(worker.metrics.snapshot()[.ai]?.processed == 10)
        worker.beginStopping()
        try await task.value
    }

    @Test("while every slot is busy the worker claims nothing more", arguments: [4, 3])
    func claimsNoMoreThanItsSlots(concurrency: Int) async throws {
        let driver = MemoryJobQueueDriver()
        let recorder = Recorder()
        let queues: [QueueName] = [.ai, .extract, .index]
        let (worker, task) = try Logic.start(
            driver, registry: .logic(recorder), configuration: Logic.configuration(queues: queues, concurrency: concurrency))
        // Idle first (the blocking claim path), then a burst on every queue.
        try await Task.sleep(for: .milliseconds(150))
        for queue in queues { for _ in 0..<2 { try await driver.enqueue(Nap(milliseconds: 400), on: queue) } }
        try await Logic.eventually("every slot busy") { recorder.started == concurrency }
        try await Task.sleep(for: .milliseconds(100))
        #expect(queues.map(driver.pendingCount).reduce(0, +) == concurrency, "claimed while every slot runs a job")
        #expect(queues.map(driver.readyCount).reduce(0, +) == 6 - concurrency)
        try await Logic.eventually("all six done") { recorder.completed == 6 }
        worker.beginStopping()
        try await task.value
    }

    @Test("a job past its timeout is cancelled, and retried after the backoff")
    func timeoutCancelsAndRetries() async throws {
        struct SlowOnce: JobPayload { static let name = "logic.slow-once" }
        let driver = MemoryJobQueueDriver()
        let recorder = Recorder()
        var registry = JobRegistry.logic(recorder)
        registry.register(SlowOnce.self) { _, context in
            recorder.note("attempt \(context.attempt)")
            if context.attempt == 1 {
                do { try await Task.sleep(for: .seconds(20)) } catch { recorder.note("attempt 1 cancelled"); throw error }
            }
        }
        let configuration = Logic.configuration(jobTimeout: .milliseconds(200))
        let id = try await driver.enqueue(SlowOnce(), on: .ai)
        let started = ContinuousClock.now
        let (worker, task) = try Logic.start(driver, registry: registry, configuration: configuration)
        try await Logic.eventually("second attempt ran") { recorder.events.contains("attempt 2") }
        #expect(ContinuousClock.now - started < .seconds(5), "the 20 s run was cut short")
        #expect(recorder.events.prefix(2) == ["attempt 1", "attempt 1 cancelled"])
        #expect(driver.scheduledRetries == [.init(jobID: id, attempts: 1, delay: .milliseconds(40))])
        try await Logic.eventually("acknowledged") { driver.pendingCount(.ai) == 0 }
        #expect(driver.failedJobs.isEmpty)
        #expect(worker.metrics.snapshot()[.ai]?.retried == 1)
        worker.beginStopping()
        try await task.value
    }

    @Test("retries wait the policy's exponential backoff, then the job is buried with its last error")
    func backoffThenBury() async throws {
        let driver = MemoryJobQueueDriver()
        let recorder = Recorder()
        let policy = RetryPolicy(maxAttempts: 4, baseDelay: .milliseconds(60), factor: 2, maxDelay: .seconds(1), jitter: .none)
        let id = try await driver.enqueue(Doomed(), on: .ai)
        let (worker, task) = try Logic.start(driver, registry: .logic(recorder), configuration: Logic.configuration(retryPolicy: policy))
        try await Logic.eventually("buried") { driver.failedJobs.count == 1 }
        #expect(recorder.started == 4)
        #expect(driver.scheduledRetries.map(\.delay) == [.milliseconds(60), .milliseconds(120), .milliseconds(240)])
        #expect(driver.scheduledRetries.map(\.attempts) == [1, 2, 3])
        let times = recorder.startTimes
        try #require(times.count == 4)
        for (index, delay) in [60, 120, 240].enumerated() {
            let gap = times[index + 1] - times[index]
            #expect(gap >= .milliseconds(delay), "wait before attempt \(index + 2): \(gap)")
        }
        let dead = try #require(driver.failedJobs.first)
        #expect(dead.envelope?.id == id)
        #expect(dead.envelope?.attempts == 4)
        #expect(dead.error.contains("flaky failure on attempt 4"))
        #expect(driver.pendingCount(.ai) == 0)
        // Counted once the driver has buried it, so the count may lag the failed list.
        try await Logic.eventually("counted") { worker.metrics.snapshot()[.ai]?.failed == 1 }
        worker.beginStopping()
        try await task.value
    }

    @Test("a PermanentJobError sends the job to failed at once, without retries")
    func permanentErrorIsNotRetried() async throws {
        let driver = MemoryJobQueueDriver()
        let recorder = Recorder()
        try await driver.enqueue(Doomed(permanent: true), on: .ai)
        let (worker, task) = try Logic.start(driver, registry: .logic(recorder), configuration: Logic.configuration())
        try await Logic.eventually("buried") { driver.failedJobs.count == 1 }
        try await Task.sleep(for: .milliseconds(150))
        #expect(recorder.started == 1)
        #expect(driver.scheduledRetries.isEmpty)
        #expect(driver.failedJobs.first?.envelope?.attempts == 1)
        #expect(driver.failedJobs.first?.error == "rejected for good")
        worker.beginStopping()
        try await task.value
    }

    @Test("a job's own maxAttempts overrides the worker's policy")
    func jobMaxAttempts() async throws {
        let driver = MemoryJobQueueDriver()
        let recorder = Recorder()
        try await driver.enqueue(Doomed(), on: .ai, options: EnqueueOptions(maxAttempts: 2))
        let (worker, task) = try Logic.start(driver, registry: .logic(recorder), configuration: Logic.configuration())
        try await Logic.eventually("buried") { driver.failedJobs.count == 1 }
        #expect(recorder.started == 2)
        #expect(driver.failedJobs.first?.envelope?.attempts == 2)
        #expect(driver.scheduledRetries.count == 1)
        worker.beginStopping()
        try await task.value
    }

    @Test("a job with no handler is retried like any failure, then buried as unknownJob")
    func unknownJob() async throws {
        struct Stranger: JobPayload { static let name = "logic.stranger" }
        let driver = MemoryJobQueueDriver()
        try await driver.enqueue(Stranger(), on: .ai)
        let (worker, task) = try Logic.start(driver, registry: JobRegistry(), configuration: Logic.configuration())
        try await Logic.eventually("buried") { driver.failedJobs.count == 1 }
        #expect(driver.failedJobs.first?.error.contains("unknownJob") == true)
        #expect(driver.failedJobs.first?.envelope?.attempts == 3)
        worker.beginStopping()
        try await task.value
    }

    @Test("an entry that is not a job is buried as it is, and its slot is given back")
    func malformedEntry() async throws {
        let driver = MemoryJobQueueDriver()
        let recorder = Recorder()
        driver.add(fields: [(name: "junk", value: Array("x".utf8))], to: .ai)
        try await driver.enqueue(Nap(milliseconds: 0), on: .ai)
        let (worker, task) = try Logic.start(
            driver, registry: .logic(recorder), configuration: Logic.configuration(concurrency: 1))
        try await Logic.eventually("buried") { driver.failedJobs.count == 1 }
        try await Logic.eventually("the real job ran") { recorder.completed == 1 }
        #expect(driver.failedJobs.first?.envelope == nil)
        #expect(driver.failedJobs.first?.fields.first?.name == "junk")
        #expect(driver.failedJobs.first?.error.contains("malformed") == true)
        worker.beginStopping()
        try await task.value
    }

    @Test("stopping lets running jobs finish within the grace period; they are acknowledged")
    func drainWithinGrace() async throws {
        let driver = MemoryJobQueueDriver()
        let recorder = Recorder()
        for _ in 0..<3 { try await driver.enqueue(Nap(milliseconds: 300), on: .ai) }
        // Every slot busy: the reader waits for a slot, and stopping ends that wait.
        let (worker, task) = try Logic.start(
            driver, registry: .logic(recorder), configuration: Logic.configuration(concurrency: 3, gracePeriod: .seconds(60)))
        try await Logic.eventually("all three running") { recorder.started == 3 }
        let stopAt = ContinuousClock.now
        worker.beginStopping()
        #expect(worker.isDraining)
        try await driver.enqueue(Nap(milliseconds: 0), on: .ai)  // not claimed any more
        try await task.value
        // Done when the jobs are, not when the grace period ends (the bound leaves room for a busy machine).
        #expect(ContinuousClock.now - stopAt < .seconds(30))
        #expect(recorder.completed == 3)
        #expect(recorder.started == 3)
        #expect(driver.pendingCount(.ai) == 0, "finished runs were acknowledged before run() returned")
        #expect(driver.readyCount(.ai) == 1)
    }

    @Test("past the grace period running jobs are cancelled and left pending, neither retried nor failed")
    func drainPastGrace() async throws {
        let driver = MemoryJobQueueDriver()
        let recorder = Recorder()
        try await driver.enqueue(Nap(milliseconds: 120_000), on: .ai)
        let (worker, task) = try Logic.start(
            driver, registry: .logic(recorder), configuration: Logic.configuration(gracePeriod: .milliseconds(200)))
        try await Logic.eventually("running") { recorder.started == 1 }
        let stopAt = ContinuousClock.now
        worker.beginStopping()
        try await task.value
        let took = ContinuousClock.now - stopAt
        // Cut at the grace period, long before the job would end (the bound leaves room for a busy machine).
        #expect(took >= .milliseconds(200) && took < .seconds(60), "stopped after \(took)")
        #expect(recorder.events == ["cancelled attempt 1"])
        #expect(driver.pendingCount(.ai) == 1, "left for another worker")
        #expect(driver.scheduledRetries.isEmpty)
        #expect(driver.failedJobs.isEmpty)
        #expect(worker.activeJobs == 0)
    }

    @Test("a job held by a dead worker is reclaimed after the visibility timeout and counted as a second attempt")
    func reclaimFromDeadWorker() async throws {
        struct Probe: JobPayload { static let name = "logic.probe" }
        let driver = MemoryJobQueueDriver()
        let recorder = Recorder()
        var registry = JobRegistry()
        registry.register(Probe.self) { _, context in
            recorder.note("attempt \(context.attempt) delivery \(context.deliveryCount) on \(context.workerID)")
        }
        try await driver.enqueue(Probe(), on: .ai)
        // Another worker claims it and dies.
        let dead = driver.forConsumer("dead-worker")
        let started = ContinuousClock.now
        #expect(try await dead.claim(from: [.ai], limitPerQueue: 1, wait: nil).count == 1)
        let configuration = Logic.configuration()
        let (worker, task) = try Logic.start(driver, registry: registry, configuration: configuration)
        try await Logic.eventually("reclaimed and run") { !recorder.events.isEmpty }
        #expect(ContinuousClock.now - started >= configuration.visibilityTimeout)
        #expect(recorder.events == ["attempt 2 delivery 2 on \(configuration.workerID)"])
        #expect(worker.metrics.snapshot()[.ai]?.reclaimed == 1)
        try await Logic.eventually("acknowledged") { driver.pendingCount(.ai) == 0 }
        worker.beginStopping()
        try await task.value
    }

    @Test("a job whose workers keep dying is not run again once its deliveries exceed its attempts")
    func tooManyDeliveries() async throws {
        let driver = MemoryJobQueueDriver()
        let recorder = Recorder()
        try await driver.enqueue(Nap(milliseconds: 0), on: .ai, options: EnqueueOptions(maxAttempts: 1))
        #expect(try await driver.forConsumer("dead-worker").claim(from: [.ai], limitPerQueue: 1, wait: nil).count == 1)
        let (worker, task) = try Logic.start(driver, registry: .logic(recorder), configuration: Logic.configuration())
        try await Logic.eventually("buried") { driver.failedJobs.count == 1 }
        #expect(recorder.started == 0, "the handler never ran")
        #expect(driver.failedJobs.first?.error.contains("tooManyDeliveries") == true)
        #expect(driver.failedJobs.first?.envelope?.attempts == 1)
        #expect(driver.pendingCount(.ai) == 0)
        worker.beginStopping()
        try await task.value
    }

    @Test("a long job is not taken over by another worker while its own lives (its claim is extended)")
    func longJobIsNotReclaimed() async throws {
        let driver = MemoryJobQueueDriver()
        let recorder = Recorder()
        // More than two visibility timeouts of 3 s: the claim is extended every second, so a
        // loaded machine has 2 s of slack per extension (1 s timeouts flaked in CI, where every
        // suite starts at once; 400 ms ones flaked before that).
        let configuration = { Logic.configuration(visibilityTimeout: .seconds(3)) }
        try await driver.enqueue(Nap(milliseconds: 7000), on: .ai)
        let (first, firstTask) = try Logic.start(driver, registry: .logic(recorder), configuration: configuration())
        try await Logic.eventually("running") { recorder.started == 1 }
        let (second, secondTask) = try Logic.start(
            driver.forConsumer("second"), registry: .logic(recorder), configuration: configuration())
        try await Logic.eventually("done") { recorder.completed == 1 }
        #expect(recorder.started == 1, "the second worker did not run it again")
        #expect(second.metrics.snapshot()[.ai]?.reclaimed == 0)
        for worker in [first, second] { worker.beginStopping() }
        try await firstTask.value
        try await secondTask.value
    }

    @Test("a finished job whose acknowledgement is slow to land is not run again by its own worker's reclaimer")
    func slowAcknowledgementIsNotReclaimed() async throws {
        let driver = MemoryJobQueueDriver()
        let recorder = Recorder()
        // The acknowledgement takes three visibility timeouts: meanwhile the entry is idle and
        // pending, so the reclaimer takes it over; the worker knows it finished it.
        driver.delayAcknowledgements(by: .milliseconds(1200))
        try await driver.enqueue(Nap(milliseconds: 0), on: .ai)
        let (worker, task) = try Logic.start(driver, registry: .logic(recorder), configuration: Logic.configuration())
        try await Logic.eventually("acknowledged") { recorder.completed == 1 && driver.pendingCount(.ai) == 0 }
        // Reclaim passes come every 200 ms: a few more find nothing to run either.
        try await Task.sleep(for: .milliseconds(600))
        #expect(recorder.started == 1, "ran once")
        worker.beginStopping()
        try await task.value
    }

    @Test("a failed claim gives its reserved slots back: the worker keeps all its slots")
    func failedClaimKeepsSlots() async throws {
        let driver = MemoryJobQueueDriver()
        let recorder = Recorder()
        for _ in 0..<4 { try await driver.enqueue(Nap(milliseconds: 150), on: .ai) }
        // The first claims (a sweep reserving both slots) fail, as against a store that went away.
        driver.failNextClaims(3)
        let (worker, task) = try Logic.start(
            driver, registry: .logic(recorder), configuration: Logic.configuration(concurrency: 2))
        try await Logic.eventually("all four done") { recorder.completed == 4 }
        #expect(recorder.peak == 2, "both slots still in use after the failures")
        worker.beginStopping()
        try await task.value
    }

    @Test("a retry scheduled by the worker is promoted when due, not a promote interval later")
    func retryIsPromotedOnTime() async throws {
        let driver = MemoryJobQueueDriver()
        let recorder = Recorder()
        var configuration = Logic.configuration(retryPolicy: RetryPolicy(maxAttempts: 2, baseDelay: .milliseconds(50), jitter: .none))
        configuration.promoteInterval = .seconds(10)
        try await driver.enqueue(Doomed(), on: .ai)
        let (worker, task) = try Logic.start(driver, registry: .logic(recorder), configuration: configuration)
        try await Logic.eventually("second attempt") { recorder.started == 2 }
        let times = recorder.startTimes
        #expect(times[1] - times[0] < .seconds(5), "promoted when due, not at the 10 s promote interval")
        worker.beginStopping()
        try await task.value
    }

    @Test("/metrics reports the memory driver's queue state and the worker's counters")
    func metricsPage() async throws {
        let driver = MemoryJobQueueDriver()
        let recorder = Recorder()
        for _ in 0..<2 { try await driver.enqueue(Nap(milliseconds: 0), on: .ai) }
        try await driver.enqueue(Nap(milliseconds: 0), on: .ai, options: EnqueueOptions(delay: .seconds(60)))
        let (worker, task) = try Logic.start(driver, registry: .logic(recorder), configuration: Logic.configuration())
        try await Logic.eventually("done") { recorder.completed == 2 }
        try await Logic.eventually("acknowledged") { driver.pendingCount(.ai) == 0 }
        let text = await WorkerHealthServer.metricsText(worker: worker)
        #expect(text.contains("switchboard_queue_depth{queue=\"ai\"} 0"))
        #expect(text.contains("switchboard_queue_delayed{queue=\"ai\"} 1"))
        #expect(text.contains("switchboard_jobs_processed_total{queue=\"ai\"} 2"))
        #expect(text.contains("switchboard_queue_failed_jobs 0"))
        worker.beginStopping()
        try await task.value
    }
}
