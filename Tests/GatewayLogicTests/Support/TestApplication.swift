/// The gateway's HTTP routes as a Hummingbird application, so the HTTP API tests drive them in
/// process with HummingbirdTesting (no socket, no WebSocket endpoint). The shipped gateway serves
/// the same internal `HTTPRoutes` through `GatewayListener.bindInternal`; this adapter lives only in the tests.
import HTTPTypes
import Hummingbird
import NIOCore

@testable import Gateway

extension GatewayServer {
    /// `/healthz`, `/metrics` and `POST /api/{method}`, each answered by `HTTPRoutes.respond`.
    func testApplication() -> some ApplicationProtocol {
        let routes = self.internalRoutes
        let router = Router()
        @Sendable func respond(_ request: Request, path: String) async throws -> Response {
            var request = request
            let body = try await request.collectBody(upTo: HTTPRoutes.maxBodySize)
            let answer = await routes.respond(
                method: request.method.rawValue, path: path, header: { request.headers[HTTPField.Name($0)!] }, body: body)
            var headers = HTTPFields()
            if let contentType = answer.contentType { headers[.contentType] = contentType }
            return Response(
                status: .init(code: answer.status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: answer.body)))
        }
        router.get("/healthz") { request, _ in try await respond(request, path: "/healthz") }
        router.get("/metrics") { request, _ in try await respond(request, path: "/metrics") }
        router.post("/api/{method}") { request, context in
            try await respond(request, path: "/api/" + (context.parameters.get("method") ?? ""))
        }
        return Application(
            router: router, configuration: .init(address: .hostname(configuration.host, port: configuration.port)), logger: logger)
    }
}
