import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import SwitchboardCore

/// `GET /health` and `GET /metrics` of a worker process, on its own port (default 9000).
public struct WorkerHealthServer: Service {
    public let worker: WorkerService
    let logger: Logger
    let onListening: @Sendable (Int) async -> Void

    /// - Parameter onListening: called with the bound port once the server listens (useful with port 0).
    public init(
        worker: WorkerService, logger: Logger = Logger(label: "switchboard.worker.health"),
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        self.worker = worker
        self.logger = logger
        self.onListening = onListening
    }

    /// The routes, for embedding in another Hummingbird application.
    public func buildRouter() -> Router<BasicRequestContext> {
        let router = Router()
        let worker = self.worker
        router.get("health") { _, _ -> Response in
            let body = WorkerHealth(
                status: worker.isDraining ? "draining" : "ok", worker_id: worker.configuration.workerID,
                hostname: WorkerConfiguration.hostName(), active_jobs: worker.activeJobs,
                uptime: (worker.uptime.inSeconds * 1000).rounded() / 1000)
            let data = try JSONEncoder().encode(body)
            return Response(
                status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        router.get("metrics") { _, _ -> Response in
            let text = await Self.metricsText(worker: worker)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        return router
    }

    /// Prometheus text for `worker`. Queue state that its driver cannot provide right now is left out.
    public static func metricsText(worker: WorkerService) async -> String {
        var stats: [QueueStats] = []
        for queue in worker.configuration.queues {
            if let s = try? await worker.driver.stats(of: queue) { stats.append(s) }
        }
        let failed = try? await worker.driver.failedCount()
        return WorkerMetricsPage.render(
            stats: stats, failedJobs: failed, metrics: worker.metrics, activeJobs: worker.activeJobs,
            uptime: worker.uptime.inSeconds)
    }

    public func run() async throws {
        let configuration = worker.configuration
        let onListening = self.onListening
        let app = Application(
            router: buildRouter(),
            configuration: .init(
                address: .hostname(configuration.healthHost, port: configuration.healthPort),
                serverName: "switchboard-worker"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? configuration.healthPort) },
            logger: logger)
        try await app.run()
    }
}

struct WorkerHealth: Codable, Sendable {
    var status: String
    var worker_id: String
    var hostname: String
    var active_jobs: Int
    var uptime: Double
}
