import CoreMetrics
import Foundation
import Observability
import SwitchboardCore
import Synchronization

/// The worker's own counters and job-duration histogram, per queue, rendered as Prometheus text
/// by `/metrics`. Each event is also reported to swift-metrics, so a process that bootstraps a
/// metrics backend sees the same numbers there.
public final class WorkerMetrics: Sendable {
    /// Upper bounds (seconds) of the job-duration histogram buckets.
    public static let durationBuckets: [Double] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]

    struct Histogram: Sendable {
        var counts = [Int](repeating: 0, count: WorkerMetrics.durationBuckets.count)
        var sum = 0.0
        var count = 0

        mutating func observe(_ seconds: Double) {
            if let index = WorkerMetrics.durationBuckets.firstIndex(where: { seconds <= $0 }) { counts[index] += 1 }
            sum += seconds
            count += 1
        }
    }

    struct PerQueue: Sendable {
        var processed = 0
        var failed = 0
        var retried = 0
        var reclaimed = 0
        var duration = Histogram()
    }

    private let state = Mutex<[QueueName: PerQueue]>([:])
    private let processedCounters: [QueueName: Counter]
    private let failedCounters: [QueueName: Counter]
    private let retriedCounters: [QueueName: Counter]
    private let durationTimers: [QueueName: CoreMetrics.Timer]

    public init(queues: [QueueName]) {
        state.withLock { state in for queue in queues { state[queue] = PerQueue() } }
        func make<M>(_ build: (QueueName) -> M) -> [QueueName: M] {
            Dictionary(uniqueKeysWithValues: queues.map { ($0, build($0)) })
        }
        processedCounters = make { Counter(label: "switchboard_jobs_processed_total", dimensions: [("queue", $0.rawValue)]) }
        failedCounters = make { Counter(label: "switchboard_jobs_failed_total", dimensions: [("queue", $0.rawValue)]) }
        retriedCounters = make { Counter(label: "switchboard_jobs_retried_total", dimensions: [("queue", $0.rawValue)]) }
        durationTimers = make { CoreMetrics.Timer(label: "switchboard_job_duration_seconds", dimensions: [("queue", $0.rawValue)]) }
    }

    func processed(_ queue: QueueName, seconds: Double) {
        state.withLock {
            $0[queue, default: PerQueue()].processed += 1
            $0[queue, default: PerQueue()].duration.observe(seconds)
        }
        processedCounters[queue]?.increment()
        durationTimers[queue]?.recordNanoseconds(Int64(seconds * 1e9))
    }

    func failed(_ queue: QueueName, seconds: Double?) {
        state.withLock {
            $0[queue, default: PerQueue()].failed += 1
            if let seconds { $0[queue, default: PerQueue()].duration.observe(seconds) }
        }
        failedCounters[queue]?.increment()
    }

    func retried(_ queue: QueueName, seconds: Double?) {
        state.withLock {
            $0[queue, default: PerQueue()].retried += 1
            if let seconds { $0[queue, default: PerQueue()].duration.observe(seconds) }
        }
        retriedCounters[queue]?.increment()
    }

    func reclaimed(_ queue: QueueName, count: Int) {
        state.withLock { $0[queue, default: PerQueue()].reclaimed += count }
    }

    /// Totals per queue since the process started.
    public func snapshot() -> [QueueName: (processed: Int, failed: Int, retried: Int, reclaimed: Int)] {
        state.withLock { state in state.mapValues { ($0.processed, $0.failed, $0.retried, $0.reclaimed) } }
    }

    var perQueue: [QueueName: PerQueue] { state.withLock { $0 } }
}

/// The worker's `/metrics` page.
enum WorkerMetricsPage {
    /// The worker's metrics: Redis-side queue state first, then this process's counters.
    static func render(stats: [QueueStats], failedJobs: Int?, metrics: WorkerMetrics, activeJobs: Int, uptime: Double) -> String {
        var out = PrometheusText()
        let queueLabel = { (queue: QueueName) in [("queue", queue.rawValue)] }
        out.family("switchboard_queue_depth", "gauge", "Entries in the queue stream, waiting or in progress.")
        for s in stats { out.sample("switchboard_queue_depth", queueLabel(s.queue), Double(s.depth)) }
        out.family("switchboard_queue_pending", "gauge", "Entries delivered to a worker and not yet acknowledged.")
        for s in stats { out.sample("switchboard_queue_pending", queueLabel(s.queue), Double(s.pending)) }
        out.family("switchboard_queue_lag", "gauge", "Entries no worker has taken yet (depth minus pending): the consumer group's backlog.")
        for s in stats { out.sample("switchboard_queue_lag", queueLabel(s.queue), Double(s.waiting)) }
        out.family("switchboard_queue_delayed", "gauge", "Jobs waiting in the delayed set (scheduled or backing off).")
        for s in stats { out.sample("switchboard_queue_delayed", queueLabel(s.queue), Double(s.delayed)) }
        out.family("switchboard_queue_oldest_age_seconds", "gauge", "Age of the oldest entry in the queue stream.")
        for s in stats {
            out.sample("switchboard_queue_oldest_age_seconds", queueLabel(s.queue), s.oldestAge.inSeconds)
        }
        if let failedJobs {
            out.family("switchboard_queue_failed_jobs", "gauge", "Jobs in the failed (dead-letter) stream.")
            out.sample("switchboard_queue_failed_jobs", [], Double(failedJobs))
        }

        let perQueue = metrics.perQueue.sorted { $0.key.rawValue < $1.key.rawValue }
        let counters: [(String, String, KeyPath<WorkerMetrics.PerQueue, Int>)] = [
            ("switchboard_jobs_processed_total", "Jobs this worker completed.", \.processed),
            ("switchboard_jobs_failed_total", "Jobs this worker moved to the failed stream.", \.failed),
            ("switchboard_jobs_retried_total", "Failed runs this worker scheduled for another attempt.", \.retried),
            ("switchboard_jobs_reclaimed_total", "Entries this worker took over from unresponsive workers.", \.reclaimed),
        ]
        for (name, help, path) in counters {
            out.family(name, "counter", help)
            for (queue, values) in perQueue { out.sample(name, queueLabel(queue), Double(values[keyPath: path])) }
        }

        let histogram = "switchboard_job_duration_seconds"
        out.family(histogram, "histogram", "Run time of jobs on this worker (completed, retried and failed runs).")
        for (queue, values) in perQueue {
            var cumulative = 0
            for (index, bound) in WorkerMetrics.durationBuckets.enumerated() {
                cumulative += values.duration.counts[index]
                out.sample("\(histogram)_bucket", queueLabel(queue) + [("le", PrometheusText.format(bound))], Double(cumulative))
            }
            out.sample("\(histogram)_bucket", queueLabel(queue) + [("le", "+Inf")], Double(values.duration.count))
            out.sample("\(histogram)_sum", queueLabel(queue), values.duration.sum)
            out.sample("\(histogram)_count", queueLabel(queue), Double(values.duration.count))
        }

        out.family("switchboard_worker_active_jobs", "gauge", "Jobs running on this worker now.")
        out.sample("switchboard_worker_active_jobs", [], Double(activeJobs))
        out.family("switchboard_worker_uptime_seconds", "gauge", "Seconds since this worker started.")
        out.sample("switchboard_worker_uptime_seconds", [], uptime)
        return out.text
    }
}
