import APIServer
import Channels
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Storage
import TestSupport
import SwitchboardCore
import RedisClient
import Synchronization
import Testing
import TurnTestSupport

/// A fake of WhatsApp's Graph API on loopback: records every request and answers as told; serves
/// media (`GET /v21.0/{media id}` answers its URL on this server, which serves the bytes to the
/// bearer of the access token), and answers 404 for the media ids it is told to fail.
final class FakeGraphAPI: Sendable {
    struct Media: Sendable {
        var bytes: [UInt8]
        var mimeType: String
    }
    struct Recorded: Sendable {
        var path: String
        var authorization: String?
        var json: [String: String]
        var text: String?
    }

    enum Mode: Sendable { case accept, windowClosed, serverError }

    let requests = Mutex<[Recorded]>([])
    let mode = Mutex(Mode.accept)
    let sent = Atomic<Int>(0)

    var recorded: [Recorded] { requests.withLock { $0 } }

    /// Runs a fake on a free loopback port for the duration of `body`, given it and its Graph base URL.
    static func running<T>(_ body: (FakeGraphAPI, String) async throws -> T) async throws -> T {
        let graph = FakeGraphAPI()
        let port = try TestServices.freePort()
        let server = Task { try await graph.application(port: port).runService(gracefulShutdownSignals: []) }
        defer { server.cancel() }
        return try await body(graph, "http://127.0.0.1:\(port)/v21.0")
    }

    let media = Mutex<[String: Media]>([:])
    let failingMedia = Mutex<Set<String>>([])
    /// Paths of the media requests (lookups and downloads), in order.
    let mediaRequests = Mutex<[String]>([])

    func application(port: Int) -> some ApplicationProtocol {
        let router = Router()
        // The same parameter name as the messages route's: Hummingbird wants one name per position.
        router.get("/v21.0/:phone") { request, context -> Response in
            let id = context.parameters.get("phone") ?? ""
            self.mediaRequests.withLock { $0.append(request.uri.path) }
            guard request.headers[.authorization] == "Bearer EAAG-access-token", !self.failingMedia.withLock({ $0.contains(id) }),
                  let media = self.media.withLock({ $0[id] })
            else {
                return Response(
                    status: .notFound, headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(string: #"{"error":{"message":"Unsupported get request.","code":100}}"#)))
            }
            let json = #"{"messaging_product":"whatsapp","url":"http://127.0.0.1:\#(port)/media/\#(id)","mime_type":"\#(media.mimeType)","file_size":\#(media.bytes.count),"id":"\#(id)"}"#
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: json)))
        }
        router.get("/media/:mediaId") { request, context -> Response in
            self.mediaRequests.withLock { $0.append(request.uri.path) }
            guard request.headers[.authorization] == "Bearer EAAG-access-token",
                  let media = self.media.withLock({ $0[context.parameters.get("mediaId") ?? ""] })
            else { return Response(status: .unauthorized) }
            return Response(status: .ok, headers: [.contentType: media.mimeType], body: .init(byteBuffer: ByteBuffer(bytes: media.bytes)))
        }
        router.post("/v21.0/:phone/messages") { request, context -> Response in
            var request = request
            let body = try await request.collectBody(upTo: 1 << 20)
            let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
            var flat: [String: String] = [:]
            for (key, value) in object { if let text = value as? String { flat[key] = text } }
            let text = (object["text"] as? [String: Any])?["body"] as? String
            self.requests.withLock {
                $0.append(Recorded(path: request.uri.path, authorization: request.headers[.authorization], json: flat, text: text))
            }
            let reply: (HTTPResponse.Status, String)
            switch self.mode.withLock({ $0 }) {
            case .accept where flat["status"] == "read":
                reply = (.ok, #"{"success":true}"#)
            case .accept:
                let n = self.sent.add(1, ordering: .relaxed).newValue
                reply = (.ok, #"{"messaging_product":"whatsapp","contacts":[{"input":"x","wa_id":"x"}],"messages":[{"id":"wamid.OUT\#(n)"}]}"#)
            case .windowClosed:
                reply = (.badRequest, #"{"error":{"message":"Re-engagement message","type":"OAuthException","code":131047}}"#)
            case .serverError:
                reply = (.internalServerError, #"{"error":{"message":"Service temporarily unavailable","code":2}}"#)
            }
            return Response(status: reply.0, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: reply.1)))
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: TestEnvironment.logger)
    }
}

/// WhatsApp end to end against real Redis and MariaDB, a worker, and a fake Graph API: a
/// connection made through the API, Meta's subscription check, signed deliveries becoming turns
/// whose replies go back through the Graph API, retried deliveries stored once, statuses.
@Suite("WhatsApp channel", .serialized)
struct WhatsAppWebhookTests {
    static let appSecret = "meta-app-secret"

    static func createChannel(_ client: some TestClientProtocol, key: String) async throws -> [String: Any] {
        try await client.execute(
            uri: "/api/v1/channels", method: .post, headers: .auth(key),
            body: jsonBody(["type": "whatsapp", "name": "Support line", "phoneNumberId": "1098765", "accessToken": "EAAG-access-token",
                            "appSecret": appSecret, "verifyToken": "let-me-in"])
        ) { response in
            #expect(response.status == .created)
            #expect(!response.text.contains("EAAG-access-token") && !response.text.contains(appSecret) && !response.text.contains("let-me-in"))
            return response.json
        }
    }

    static func message(from waID: String, id: String, text: String) -> String {
        #"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","contacts":[{"profile":{"name":"Ada"},"wa_id":"\#(waID)"}],"messages":[{"from":"\#(waID)","id":"\#(id)","timestamp":"1700000000","type":"text","text":{"body":"\#(text)"}}]}}]}]}"#
    }

    static func status(_ wamid: String, _ status: String) -> String {
        #"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","statuses":[{"id":"\#(wamid)","status":"\#(status)","timestamp":"1700000100","recipient_id":"1555"}]}}]}]}"#
    }

    static func post(_ client: some TestClientProtocol, _ url: String, _ body: String, secret: String = appSecret) async throws -> TestResponse {
        try await client.execute(
            uri: url, method: .post,
            headers: [.contentType: "application/json", HTTPField.Name("X-Hub-Signature-256")!: WhatsAppInbound.signature(of: Array(body.utf8), secret: secret)],
            body: ByteBuffer(string: body))
    }

    @Test func aConnectionsSecretsAreSealedAndNeverShown() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            try await env.application().test(.router) { client in
                let created = try await Self.createChannel(client, key: key)
                let id = try #require(created["id"] as? Int)
                #expect((created["webhookUrl"] as? String) == "/api/v1/webhooks/whatsapp/\(created["publicId"] as? String ?? "")")
                #expect((created["publicId"] as? String)?.count == 35)
                let stored = try #require(try await env.stores.connections.connection(id: Int64(id), ownerID: user.id))
                #expect(!String(decoding: stored.sealedSecrets, as: UTF8.self).contains("EAAG"), "sealed at rest")
                try await client.execute(uri: "/api/v1/channels/\(id)", method: .get, headers: .auth(key)) { response in
                    #expect(response.status == .ok)
                    #expect(!response.text.contains("EAAG-access-token"))
                    #expect(response.json["secretsSet"] as? [String] == ["accessToken", "appSecret", "verifyToken"])
                }
                // Another user sees nothing of it.
                let (_, strangerKey) = try await env.makeUser()
                try await client.execute(uri: "/api/v1/channels/\(id)", method: .get, headers: .auth(strangerKey)) { #expect($0.status == .notFound) }
                try await client.execute(
                    uri: "/api/v1/channels", method: .post, headers: .auth(key), body: jsonBody(["type": "telegram", "name": "x"])
                ) { response in
                    #expect(response.status == .badRequest)
                    #expect(response.errorCode == "invalid_field")
                }
                try await client.execute(
                    uri: "/api/v1/channels/\(id)", method: .patch, headers: .auth(key), body: jsonBody(["appSecret": "rotated-secret"])
                ) { #expect($0.status == .ok) }
                let rotated = try #require(try await env.stores.connections.connection(id: Int64(id), ownerID: user.id))
                #expect(try APIDependencies(redis: env.redis, stores: env.stores, jobs: env.jobs).secrets.open(rotated.sealedSecrets) == [
                    "accessToken": "EAAG-access-token", "appSecret": "rotated-secret", "verifyToken": "let-me-in",
                ])
            }
        }
    }

    @Test func metasSubscriptionCheckAndSignedDeliveriesOnly() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            try await env.application().test(.router) { client in
                let created = try await Self.createChannel(client, key: key)
                let url = try #require(created["webhookUrl"] as? String)
                try await client.execute(uri: url + "?hub.mode=subscribe&hub.verify_token=let-me-in&hub.challenge=8675309", method: .get) { response in
                    #expect(response.status == .ok)
                    #expect(response.text == "8675309")
                }
                try await client.execute(uri: url + "?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1", method: .get) {
                    #expect($0.status == .forbidden)
                }
                let body = Self.message(from: "15551234", id: "wamid.IN1", text: "hello")
                let forged = try await Self.post(client, url, body, secret: "not-the-secret")
                #expect(forged.status == .unauthorized)
                #expect(forged.errorCode == "unauthorized")
                let unknown = try await Self.post(client, "/api/v1/webhooks/whatsapp/ch_00000000000000000000000000000000", body)
                #expect(unknown.status == .notFound)
                #expect(try await env.stores.chats.chats(ownerID: user.id, limit: 10, beforeID: nil).isEmpty, "nothing stored")

                let first = try await Self.post(client, url, body)
                #expect(first.status == .ok)
                #expect(first.json["accepted"] as? Int == 1)
                // Meta retries: the same wamid is stored once and queued once.
                let again = try await Self.post(client, url, body)
                #expect(again.status == .ok)
                #expect(again.json["duplicates"] as? Int == 1)
                let second = try await Self.post(client, url, Self.message(from: "15551234", id: "wamid.IN2", text: "again"))
                #expect(second.json["accepted"] as? Int == 1)
                let chats = try await env.stores.chats.chats(ownerID: user.id, limit: 10, beforeID: nil)
                #expect(chats.count == 1, "one chat per contact and connection")
                #expect(chats.first?.title == "Ada")
                let messages = try await env.stores.messages.messages(chatID: chats[0].id, ownerID: user.id, limit: 10, beforeID: nil, afterID: nil)
                #expect(Set(messages.compactMap(\.externalID)) == ["wamid.IN1", "wamid.IN2"])
                #expect(try await TurnTestEnvironment.queuedTurnIDs(env.redis).count == 2)
            }
        }
    }

    @Test func badDeliveriesAreRefusedAsJSONAndStoreNothingForAnyTenant() async throws {
        try await TestEnvironment.with { env in
            let (alice, aliceKey) = try await env.makeUser()
            let (bob, bobKey) = try await env.makeUser()
            try await env.application(settings: APISettings(maxBodyBytes: 4096)).test(.router) { client in
                let aliceURL = try #require(try await Self.createChannel(client, key: aliceKey)["webhookUrl"] as? String)
                let bobChannel = try await client.execute(
                    uri: "/api/v1/channels", method: .post, headers: .auth(bobKey),
                    body: jsonBody(["type": "whatsapp", "name": "Bob's", "phoneNumberId": "222", "accessToken": "t", "appSecret": "bobs-app-secret",
                                    "verifyToken": "v"]))
                let bobURL = try #require(bobChannel.json["webhookUrl"] as? String)
                // Signed by the right app secret, but not a webhook payload.
                let garbled = try await Self.post(client, aliceURL, #"{"entry": [{"changes": "#)
                #expect(garbled.status == .badRequest)
                #expect(garbled.errorCode == "bad_request")
                // Larger than the body limit.
                let huge = try await Self.post(client, aliceURL, Self.message(from: "1", id: "w.big", text: String(repeating: "x", count: 8000)))
                #expect(huge.status == .contentTooLarge)
                #expect(huge.errorCode == "payload_too_large")
                // Signed with Bob's app secret, sent to Alice's channel (and the other way round).
                let crossed = try await Self.post(client, aliceURL, Self.message(from: "1", id: "w.x", text: "hi"), secret: "bobs-app-secret")
                #expect(crossed.status == .unauthorized)
                let reversed = try await Self.post(client, bobURL, Self.message(from: "1", id: "w.y", text: "hi"))
                #expect(reversed.status == .unauthorized)
                for user in [alice, bob] {
                    #expect(try await env.stores.chats.chats(ownerID: user.id, limit: 10, beforeID: nil).isEmpty, "nothing stored")
                }
                #expect(try await TurnTestEnvironment.queuedTurnIDs(env.redis).isEmpty, "nothing queued")
                // Alice's channel still works afterwards.
                #expect(try await Self.post(client, aliceURL, Self.message(from: "1", id: "w.ok", text: "hi")).json["accepted"] as? Int == 1)
            }
        }
    }

    @Test func aRepliesGoesBackThroughTheGraphAPIAndItsStatusOnlyMovesForward() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            try await FakeGraphAPI.running { graph, graphURL in
                let deliveries = ChannelRegistry.configured(stores: env.stores, secrets: .development(), whatsAppGraphURL: graphURL).deliveries
                try await env.withWorker(deliveries: deliveries) {
                    try await env.application().test(.router) { client in
                        let url = try #require(try await Self.createChannel(client, key: key)["webhookUrl"] as? String)
                        #expect(try await Self.post(client, url, Self.message(from: "15551234", id: "wamid.Q", text: "what time is it")).status == .ok)

                        var sent: [FakeGraphAPI.Recorded] = []
                        for _ in 0..<200 {
                            sent = graph.recorded.filter { $0.text != nil }
                            if !sent.isEmpty { break }
                            try await Task.sleep(for: .milliseconds(50))
                        }
                        let reply = try #require(sent.first, "the reply reached the Graph API")
                        #expect(reply.path == "/v21.0/1098765/messages")
                        #expect(reply.authorization == "Bearer EAAG-access-token")
                        #expect(reply.json["to"] == "15551234")
                        #expect(reply.text == EchoResponder.reply(to: "what time is it"))
                        // The read mark goes out alongside the turn, not before the reply: on a busy
                        // machine it can arrive second.
                        var markedRead = false
                        for _ in 0..<200 {
                            markedRead = graph.recorded.contains { $0.json["status"] == "read" && $0.json["message_id"] == "wamid.Q" }
                            if markedRead { break }
                            try await Task.sleep(for: .milliseconds(50))
                        }
                        #expect(markedRead, "marked read when the turn started")

                        let chat = try #require(try await env.stores.chats.chats(ownerID: user.id, limit: 1, beforeID: nil).first)
                        var stored: Message?
                        for _ in 0..<100 {
                            stored = try await env.stores.messages.messages(chatID: chat.id, ownerID: user.id, limit: 5, beforeID: nil, afterID: nil)
                                .first { $0.role == .assistant && $0.deliveredAt != nil }
                            if stored != nil { break }
                            try await Task.sleep(for: .milliseconds(50))
                        }
                        let answer = try #require(stored)
                        #expect(answer.externalID == "wamid.OUT1", "the wamid WhatsApp gave the reply is kept")
                        #expect(answer.deliveryStatus == .sent)

                        _ = try await Self.post(client, url, Self.status("wamid.OUT1", "read"))
                        #expect(try await env.stores.messages.message(id: answer.id)?.deliveryStatus == .read)
                        _ = try await Self.post(client, url, Self.status("wamid.OUT1", "delivered"))
                        #expect(try await env.stores.messages.message(id: answer.id)?.deliveryStatus == .read, "a late delivered does not undo read")
                    }
                }
            }
        }
    }
}
