import Foundation
import Queue
import RedisClient
import TestSupport
import Testing

/// The admin commands an operator runs, through the real executable: failed jobs listed,
/// retried one by one or all at once, purged; users created with a role.
@Suite(.serialized) struct AdminCommandTests {
    struct Doomed: JobPayload {
        static let name = "doomed"
        var tag: String
    }

    struct Doom: PermanentJobError {}

    /// Runs a worker on `prefix` until `count` jobs sit in the failed stream.
    static func failJobs(_ tags: [String], prefix: String, redis: RedisClient) async throws {
        var registry = JobRegistry()
        registry.register(Doomed.self) { _, _ in throw Doom() }
        let worker = try WorkerService(
            client: redis, registry: registry,
            configuration: WorkerConfiguration(workerID: "admin-test", queues: [.ai], concurrency: 2, healthPort: 0, blockTime: .milliseconds(100)),
            logger: TestServices.logger("admin-test"))
        let running = Task { try await worker.run() }
        let queue = JobQueue(client: redis)
        for tag in tags { try await queue.enqueue(Doomed(tag: tag), on: .ai) }
        let failed = FailedJobs(client: redis)
        for _ in 0..<200 where try await failed.list().count < tags.count { try await Task.sleep(for: .milliseconds(50)) }
        worker.beginStopping()
        running.cancel()
        _ = await running.result
    }

    @Test func failedJobsAreListedRetriedAndPurged() async throws {
        let prefix = "sbtest-jobs-\(UUID().uuidString.prefix(8)):"
        let environment = ["SB_REDIS_KEY_PREFIX": prefix]
        let redis = try TestRedis.client(prefix: prefix)
        try await Self.failJobs(["one"], prefix: prefix, redis: redis)

        let listed = try await ProcessTests.run(["jobs", "failed", "list"], environment: environment)
        #expect(listed.status == 0, "\(listed.stderr)")
        #expect(listed.stdout.contains("name=doomed") && listed.stdout.contains("queue=ai"))
        let id = try #require(listed.stdout.split(separator: " ").first.map(String.init))
        let retried = try await ProcessTests.run(["jobs", "failed", "retry", id], environment: environment)
        #expect(retried.stdout.contains("requeued 1 job(s)"), "\(retried.stderr)")
        #expect(try await FailedJobs(client: redis).list().isEmpty)
        #expect(try await ProcessTests.run(["jobs", "failed", "retry"], environment: environment).status != 0, "an id or --all is required")

        // The retried job fails again, with a second one: --all puts both back, purge drops them.
        try await Self.failJobs(["two"], prefix: prefix, redis: redis)
        #expect(try await FailedJobs(client: redis).list().count == 2)
        let all = try await ProcessTests.run(["jobs", "failed", "retry", "--all"], environment: environment)
        #expect(all.stdout.contains("requeued 2 job(s)"), "\(all.stderr)")
        try await Self.failJobs([], prefix: prefix, redis: redis)
        for _ in 0..<100 where try await FailedJobs(client: redis).list().count < 2 { try await Task.sleep(for: .milliseconds(50)) }
        let purged = try await ProcessTests.run(["jobs", "failed", "purge"], environment: environment)
        #expect(purged.stdout.contains("purged 2 job(s)"), "\(purged.stderr)")
        #expect(try await ProcessTests.run(["jobs", "failed", "list"], environment: environment).stdout.isEmpty)
        await TestRedis.discard(redis)
    }

    @Test func usersAreCreatedWithARoleAndGivenTheirOwnQuotas() async throws {
        let email = "admin-\(UUID().uuidString.prefix(8).lowercased())@example.com"
        let created = try await ProcessTests.run(["users", "create", "--email", email, "--role", "admin"])
        #expect(created.status == 0, "\(created.stderr)")
        let unknown = try await ProcessTests.run(["users", "create", "--email", "x-" + email, "--role", "overlord"])
        #expect(unknown.status != 0)
        #expect(unknown.stderr.contains("--role must be user, operator or admin"))
        let again = try await ProcessTests.run(["users", "create", "--email", email])
        #expect(again.status != 0, "an email is one user")

        let quota = try await ProcessTests.run(["users", "quota", "--email", email, "--messages-per-day", "25"])
        #expect(quota.status == 0, "\(quota.stderr)")
        #expect(quota.stdout.contains("25 messages a day"))
        #expect(try await ProcessTests.run(["users", "quota", "--email", email]).status != 0, "a quota to set is required")
        let stranger = try await ProcessTests.run(["users", "quota", "--email", "nobody-\(email)", "--tokens-per-month", "10"])
        #expect(stranger.status != 0)
        #expect(stranger.stderr.contains("no user with email"))
    }
}
