import Logging
import NIOCore
import SwitchboardCore
import Testing

@testable import Gateway

/// The HTTP endpoints as the listeners serve them (`HTTPRoutes.respond`): statuses, the API key,
/// bodies; no socket and no Redis.
@Suite struct HTTPRoutesTests {
    static let server: GatewayServer = {
        var configuration = GatewayConfiguration()
        configuration.apiKey = "key"
        return GatewayServer(configuration: configuration, redis: nil, logger: Logger(label: "test"))
    }()
    let routes = Self.server.internalRoutes

    func answer(_ method: String, _ path: String, key: String? = "key", body: String = "") async -> HTTPRoutes.Answer {
        await routes.respond(method: method, path: path, header: { $0 == "X-API-Key" ? key : nil }, body: ByteBuffer(string: body))
    }

    @Test func answersEachPathAndMethodWithItsStatus() async {
        let health = await answer("GET", "/healthz")
        #expect(health.status == 200 && health.body == "ok\n")
        let metrics = await answer("GET", "/metrics")
        #expect(metrics.status == 200 && metrics.contentType == "text/plain; version=0.0.4")
        let info = await answer("POST", "/api/info")
        #expect(info.status == 200 && info.contentType == "application/json")
        #expect(JSONValue.parse(Array(info.body.utf8))?["result"]?["nodes"] != nil)
        #expect(await answer("POST", "/api/nope").status == 404)
        #expect(await answer("GET", "/api/info").status == 405)
        #expect(await answer("POST", "/healthz").status == 405)
        #expect(await answer("DELETE", "/metrics").status == 405)
        #expect(await answer("GET", "/elsewhere").status == 404)
    }

    @Test func thePublicPortAnswersOnlyABareHealthCheck() async {
        let routes = Self.server.routes
        func answer(_ method: String, _ path: String) async -> HTTPRoutes.Answer {
            await routes.respond(method: method, path: path, header: { $0 == "X-API-Key" ? "key" : nil }, body: ByteBuffer(string: "{}"))
        }
        let health = await answer("GET", "/healthz")
        #expect(health.status == 200 && health.body == "ok\n")
        #expect(await answer("POST", "/api/publish").status == 404)
        #expect(await answer("POST", "/api/info").status == 404)
        #expect(await answer("GET", "/metrics").status == 404)
        #expect(await answer("POST", "/healthz").status == 405)
    }

    @Test func theAPINeedsTheKeyAndAJSONBody() async {
        let refused = await answer("POST", "/api/info", key: "wrong")
        #expect(refused.status == 401 && refused.body.isEmpty)
        #expect(await answer("POST", "/api/info", key: nil).status == 401)
        #expect(await answer("POST", "/api/publish", body: "{").status == 400)
        let unknown = await answer("POST", "/api/publish", body: #"{"channel":"nowhere:a","data":1}"#)
        #expect(unknown.status == 200)
        #expect(JSONValue.parse(Array(unknown.body.utf8))?["error"]?["code"] == .int(102))
    }

    @Test func theKeyMayComeInEitherHeader() {
        #expect(HTTPAPI.isAuthorised(apiKey: "k", xAPIKey: "k", authorization: nil))
        #expect(HTTPAPI.isAuthorised(apiKey: "k", xAPIKey: nil, authorization: "apikey k"))
        #expect(HTTPAPI.isAuthorised(apiKey: "k", xAPIKey: nil, authorization: "ApiKey k"))
        #expect(!HTTPAPI.isAuthorised(apiKey: "k", xAPIKey: nil, authorization: "Bearer k"))
        #expect(!HTTPAPI.isAuthorised(apiKey: "k", xAPIKey: "kk", authorization: nil))
        #expect(!HTTPAPI.isAuthorised(apiKey: "", xAPIKey: "", authorization: nil))
        #expect(!HTTPAPI.isAuthorised(apiKey: nil, xAPIKey: "k", authorization: nil))
    }

    @Test func channelPatternsMatchWithStars() {
        #expect(HTTPAPI.glob("chat:*", matches: "chat:a"))
        #expect(HTTPAPI.glob("*:a", matches: "chat:a"))
        #expect(HTTPAPI.glob("c*t:*b", matches: "chat:ab"))
        #expect(!HTTPAPI.glob("chat:*", matches: "user:a"))
        #expect(!HTTPAPI.glob("chat:a", matches: "chat:ab"))
        #expect(HTTPAPI.glob("*", matches: ""))
    }
}
