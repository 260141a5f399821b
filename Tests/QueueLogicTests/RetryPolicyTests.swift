import Queue
import SwitchboardCore
import Testing

/// The one `RetryPolicy` (SwitchboardCore) as the worker and the AI providers use it.
@Suite("Retry policy")
struct RetryPolicyTests {
    @Test("exponential, capped, and each jitter only spreads within its bounds")
    func delays() {
        var policy = RetryPolicy(maxAttempts: 5, baseDelay: .milliseconds(100), factor: 2, maxDelay: .seconds(1), jitter: .none)
        #expect((1...5).map { policy.delay(afterAttempt: $0) } == [100, 200, 400, 800, 1000].map { .milliseconds($0) })
        #expect(policy.delay(afterAttempt: 1000) == .seconds(1))
        policy.jitter = .proportional(0.2)
        #expect(policy.delay(afterAttempt: 3, random: 0) == .milliseconds(400))
        #expect(policy.delay(afterAttempt: 3, random: 1) == .milliseconds(480))
        policy.jitter = .full
        #expect(policy.delay(afterAttempt: 3, random: 0) == .milliseconds(50))
        #expect(policy.delay(afterAttempt: 3, random: 1) == .milliseconds(400))
        for _ in 0..<100 {
            let delay = policy.delay(afterAttempt: 4)
            #expect(delay >= .milliseconds(50) && delay <= .milliseconds(800))
        }
    }

    @Test("attempts: retry allowed until maxAttempts; none allows no retry; at least one attempt")
    func attempts() {
        let policy = RetryPolicy(maxAttempts: 3)
        #expect(policy.allowsRetry(afterAttempt: 2))
        #expect(!policy.allowsRetry(afterAttempt: 3))
        #expect(!RetryPolicy.none.allowsRetry(afterAttempt: 1))
        #expect(RetryPolicy(maxAttempts: 0).maxAttempts == 1)
    }

    @Test("the worker's maxRetries is its policy's attempts minus one")
    func workerRetries() {
        var configuration = WorkerConfiguration(maxRetries: 2)
        #expect(configuration.retryPolicy.maxAttempts == 3)
        configuration.maxRetries = 0
        #expect(configuration.retryPolicy.maxAttempts == 1)
        #expect(WorkerConfiguration().maxRetries == 5)
        #expect(WorkerConfiguration().retryPolicy == WorkerConfiguration.defaultRetryPolicy)
        #expect(WorkerConfiguration(retryPolicy: RetryPolicy(maxAttempts: 4)).maxRetries == 3)
    }

    @Test("durations as seconds and milliseconds")
    func durationConversions() {
        #expect(Duration.milliseconds(1500).inSeconds == 1.5)
        #expect(Duration.milliseconds(1500).inMilliseconds == 1500)
        #expect(Duration.microseconds(2999).inMilliseconds == 2)
    }
}
