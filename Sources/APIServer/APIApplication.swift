import Hummingbird
import Logging
import NIOCore
import Observability

/// The HTTP surface of the api role. Issue-by-issue it grows REST, SSE and webhooks; every
/// route shares the JSON error shape and the request id header.
public enum APIApplication {
    public static func buildRouter(healthChecks: [HealthCheck]) -> Router<BasicRequestContext> {
        MetricsSetup.bootstrap()
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: RequestIDMiddleware())
        router.add(middleware: JSONErrorMiddleware())
        router.add(middleware: MetricsMiddleware())
        router.get("/healthz") { _, _ in
            await HealthEndpoint.response(healthChecks)
        }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: MetricsSetup.render()))
            )
        }
        return router
    }

    public static func build(host: String, port: Int, healthChecks: [HealthCheck], logger: Logger) -> some ApplicationProtocol {
        Application(
            router: buildRouter(healthChecks: healthChecks),
            configuration: .init(address: .hostname(host, port: port), serverName: "switchboard"),
            logger: logger
        )
    }
}
