/// The worker's `/metrics` page: the queue gauges an autoscaler reads.
@testable import Queue
import Testing

struct WorkerMetricsPageTests {
    @Test func showsDepthPendingAndTheBacklogNoWorkerHasTaken() {
        let stats = [QueueStats(queue: .ai, depth: 7, pending: 2, delayed: 1, oldestAge: .seconds(3))]
        let page = WorkerMetricsPage.render(stats: stats, failedJobs: 0, metrics: WorkerMetrics(queues: [.ai]), activeJobs: 2, uptime: 1)
        #expect(page.contains("switchboard_queue_depth{queue=\"ai\"} 7"))
        #expect(page.contains("switchboard_queue_pending{queue=\"ai\"} 2"))
        #expect(page.contains("# TYPE switchboard_queue_lag gauge"))
        #expect(page.contains("switchboard_queue_lag{queue=\"ai\"} 5"))
    }
}
