import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import SwitchboardCore

/// `GET /health` and `GET /metrics` of a worker process, on its own port (default 9000).
public struct WorkerHealthServer: Service {
    /// What the app assembly puts at the listener's HTTP edge (the queue does not own the error
    /// shape): middleware in front of the routes, and channel handlers after the HTTP codec.
    public struct Edge: Sendable {
        public var configure: @Sendable (Router<BasicRequestContext>) -> Void
        public var channelHandlers: @Sendable () -> [any RemovableChannelHandler]

        public init(
            configure: @escaping @Sendable (Router<BasicRequestContext>) -> Void,
            channelHandlers: @escaping @Sendable () -> [any RemovableChannelHandler]
        ) {
            self.configure = configure
            self.channelHandlers = channelHandlers
        }

        /// Hummingbird's own answers.
        public static let plain = Edge(configure: { _ in }, channelHandlers: { [] })
    }

    public let worker: WorkerService
    let logger: Logger
    let edge: Edge
    let onListening: @Sendable (Int) async -> Void

    /// - Parameter onListening: called with the bound port once the server listens (useful with port 0).
    public init(
        worker: WorkerService, logger: Logger = Logger(label: "switchboard.worker.health"), edge: Edge = .plain,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        self.worker = worker
        self.logger = logger
        self.edge = edge
        self.onListening = onListening
    }

    /// The routes, for embedding in another Hummingbird application.
    public func buildRouter() -> Router<BasicRequestContext> {
        let router = Router()
        edge.configure(router)
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
        let handlers = edge.channelHandlers
        let app = Application(
            router: buildRouter(),
            server: .http1(configuration: .init(additionalChannelHandlers: handlers())),
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
