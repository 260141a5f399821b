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
        #expect(Self.error(await answer("POST", "/api/nope")) == ErrorAnswer(404, "unknown_method"))
        #expect(Self.error(await answer("GET", "/api/info")) == ErrorAnswer(405, "method_not_allowed", allow: "POST"))
        #expect(Self.error(await answer("POST", "/healthz")) == ErrorAnswer(405, "method_not_allowed", allow: "GET"))
        #expect(Self.error(await answer("DELETE", "/metrics")) == ErrorAnswer(405, "method_not_allowed", allow: "GET"))
        #expect(Self.error(await answer("GET", "/elsewhere")) == ErrorAnswer(404, "not_found"))
    }

    /// An error answer's status, its JSON body's `error.code`, and its `Allow` header.
    struct ErrorAnswer: Equatable {
        var status: Int
        var code: String
        var allow: String?

        init(_ status: Int, _ code: String, allow: String? = nil) {
            self.status = status
            self.code = code
            self.allow = allow
        }
    }

    /// nil for an answer that is not the error shape (`{"error":{"code","message"}}`, JSON).
    static func error(_ answer: HTTPRoutes.Answer) -> ErrorAnswer? {
        let error = JSONValue.parse(Array(answer.body.utf8))?["error"]
        guard answer.contentType == "application/json", case .string(let code)? = error?["code"], error?["message"] != nil else { return nil }
        return ErrorAnswer(answer.status, code, allow: answer.allow)
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
        #expect(Self.error(await answer("POST", "/healthz")) == ErrorAnswer(405, "method_not_allowed", allow: "GET"))
        #expect(Self.error(await answer("GET", "/elsewhere")) == ErrorAnswer(404, "not_found"))
    }

    @Test func theAPINeedsTheKeyAndAJSONBody() async {
        let refused = await answer("POST", "/api/info", key: "wrong")
        #expect(Self.error(refused) == ErrorAnswer(401, "unauthorized") && !refused.body.contains("wrong"))
        #expect(await answer("POST", "/api/info", key: nil).status == 401)
        #expect(Self.error(await answer("POST", "/api/publish", body: "{")) == ErrorAnswer(400, "invalid_json"))
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
