import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import SwitchboardCore
import Testing

@testable import Gateway

@Suite struct HTTPAPITests {
    func server() -> GatewayServer {
        var configuration = GatewayConfiguration()
        configuration.port = 0
        configuration.apiKey = "key"
        configuration.tokenSecret = "secret"
        configuration.allowedOrigins = ["https://app.example"]
        var chat = ChannelOptions()
        chat.historySize = 5
        chat.historyTTL = 60
        chat.presence = true
        chat.allowSubscribeForClient = true
        configuration.namespaces = [NamespaceConfiguration(name: "chat", options: chat)]
        return GatewayServer(configuration: configuration, redis: nil, logger: Logger(label: "test"))
    }

    func post(_ client: some TestClientProtocol, _ method: String, _ body: String, key: String? = "key") async throws -> (HTTPResponse.Status, JSONValue?) {
        var headers = HTTPFields()
        if let key { headers[HTTPField.Name("X-API-Key")!] = key }
        return try await client.execute(uri: "/api/\(method)", method: .post, headers: headers, body: ByteBuffer(string: body)) { response in
            (response.status, JSONValue.parse(response.body.readableBytesView))
        }
    }

    @Test func aWrongKeyIs401() async throws {
        try await server().testApplication().test(.router) { client in
            #expect(try await post(client, "info", "{}", key: "nope").0 == .unauthorized)
            #expect(try await post(client, "info", "{}", key: nil).0 == .unauthorized)
            let status = try await client.execute(uri: "/api/info", method: .post, headers: [.authorization: "apikey key"]) { $0.status }
            #expect(status == .ok)
        }
    }

    @Test func publishKeepsHistoryAndAnswersPositions() async throws {
        try await server().testApplication().test(.router) { client in
            let (_, first) = try await post(client, "publish", #"{"channel":"chat:a","data":{"n":1}}"#)
            #expect(first?["result"]?["offset"] == .int(1))
            let epoch = first?["result"]?["epoch"]
            let (_, second) = try await post(client, "publish", #"{"channel":"chat:a","data":{"n":2},"tags":{"k":"v"}}"#)
            #expect(second?["result"]?["offset"] == .int(2))
            #expect(second?["result"]?["epoch"] == epoch)

            let (_, history) = try await post(client, "history", #"{"channel":"chat:a","limit":-1}"#)
            #expect(history?["result"]?["publications"]?.serialized == #"[{"data":{"n":1},"offset":1},{"data":{"n":2},"offset":2,"tags":{"k":"v"}}]"#)
            let (_, since) = try await post(client, "history", #"{"channel":"chat:a","limit":10,"since":{"offset":1,"epoch":\#(epoch!.serialized)}}"#)
            #expect(since?["result"]?["publications"]?.serialized == #"[{"data":{"n":2},"offset":2,"tags":{"k":"v"}}]"#)

            let removed = try await post(client, "history_remove", #"{"channel":"chat:a"}"#).1
            #expect(removed?["result"] == .object([:]))
            let (_, empty) = try await post(client, "history", #"{"channel":"chat:a","limit":-1}"#)
            #expect(empty?["result"]?["publications"] == nil)
            #expect(empty?["result"]?["offset"] == .int(2))
        }
    }

    @Test func aRepeatedIdempotencyKeyPublishesOnce() async throws {
        try await server().testApplication().test(.router) { client in
            let body = #"{"channel":"chat:i","data":{"n":1},"idempotency_key":"k1"}"#
            let first = try await post(client, "publish", body).1
            let repeated = try await post(client, "publish", body).1
            #expect(first?["result"]?["offset"] == .int(1))
            #expect(repeated?["result"] == first?["result"])
            let other = try await post(client, "publish", #"{"channel":"chat:i","data":{"n":2},"idempotency_key":"k2"}"#).1
            #expect(other?["result"]?["offset"] == .int(2))
            let elsewhere = try await post(client, "publish", #"{"channel":"chat:j","data":{"n":1},"idempotency_key":"k1"}"#).1
            #expect(elsewhere?["result"]?["offset"] == .int(1))
            let (_, history) = try await post(client, "history", #"{"channel":"chat:i","limit":-1}"#)
            #expect(history?["result"]?["publications"]?.serialized == #"[{"data":{"n":1},"offset":1},{"data":{"n":2},"offset":2}]"#)
        }
    }

    @Test func answersErrorsInTheBody() async throws {
        try await server().testApplication().test(.router) { client in
            let unknown = try await post(client, "publish", #"{"channel":"nowhere:a","data":1}"#).1
            let noData = try await post(client, "publish", #"{"channel":"chat:a"}"#).1
            let noHistory = try await post(client, "history", #"{"channel":"plain"}"#).1
            #expect(unknown?["error"]?["code"] == .int(102))
            #expect(noData?["error"]?["code"] == .int(107))
            #expect(noHistory?["error"]?["code"] == .int(108))
        }
    }

    @Test func broadcastAndBatchAnswerPerCommand() async throws {
        try await server().testApplication().test(.router) { client in
            let (_, broadcast) = try await post(client, "broadcast", #"{"channels":["chat:x","nowhere:y"],"data":{}}"#)
            #expect(broadcast?["result"]?["responses"]?.serialized == #"[{"result":{"epoch":\#(broadcast?["result"]?["responses"]?.arrayFirst?["result"]?["epoch"]?.serialized ?? "null"),"offset":1}},{"error":{"code":102,"message":"unknown channel"}}]"#)
            let (_, batch) = try await post(client, "batch", #"{"commands":[{"publish":{"channel":"plain","data":1}},{"presence_stats":{"channel":"chat:x"}}]}"#)
            #expect(batch?["result"]?["replies"]?.serialized == #"[{"publish":{}},{"presence_stats":{"num_clients":0,"num_users":0}}]"#)
            let (_, info) = try await post(client, "info", "{}")
            #expect(info?["result"]?["nodes"]?.arrayFirst?["uid"]?.stringValue?.isEmpty == false)
        }
    }

    @Test func servesMetricsAndHealth() async throws {
        try await server().testApplication().test(.router) { client in
            let metrics = try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
            #expect(metrics.contains("switchboard_gateway_connections 0"))
            #expect(metrics.contains("# TYPE switchboard_gateway_slow_disconnects_total counter"))
            #expect(try await client.execute(uri: "/healthz", method: .get) { $0.status } == .ok)
        }
    }
}

extension JSONValue {
    var arrayFirst: JSONValue? {
        if case .array(let items) = self { return items.first }
        return nil
    }
}
