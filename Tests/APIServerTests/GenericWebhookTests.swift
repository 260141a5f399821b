/// The generic webhook end to end against real Redis and MariaDB and a worker running the echo
/// responder: `wait` answered with the reply (or 202 when the turn is slower), callbacks POSTed to
/// a receiver on loopback with a signature it verifies, retried after a 500, refused for private
/// addresses unless configuration allows them, and bad input refused before anything is stored.
import APIServer
import Channels
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Storage
import SwitchboardCore
import Synchronization
import TestSupport
import Testing
import TurnTestSupport

/// A callback receiver on loopback: records every POST and answers 500 to the first `failFirst`.
final class CallbackReceiver: Sendable {
    struct Received: Sendable {
        var signature: String?
        var delivery: String?
        var body: [UInt8]
    }

    let received = Mutex<[Received]>([])
    let failFirst: Int

    init(failFirst: Int = 0) { self.failFirst = failFirst }

    var all: [Received] { received.withLock { $0 } }

    func application(port: Int) -> some ApplicationProtocol {
        let router = Router()
        router.post("/hook") { request, _ -> Response in
            var request = request
            let body = try await request.collectBody(upTo: 1 << 20)
            let count = self.received.withLock {
                $0.append(Received(
                    signature: request.headers[HTTPField.Name("X-Switchboard-Signature")!],
                    delivery: request.headers[HTTPField.Name("X-Switchboard-Delivery")!], body: Array(body.readableBytesView)))
                return $0.count
            }
            return Response(status: count <= self.failFirst ? .internalServerError : .ok)
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: TestEnvironment.logger)
    }

    /// Waits (bounded) until `count` requests arrived.
    func waitFor(_ count: Int) async throws -> [Received] {
        for _ in 0..<300 {
            let now = all
            if now.count >= count { return now }
            try await Task.sleep(for: .milliseconds(50))
        }
        return all
    }
}

@Suite("Generic webhook", .serialized)
struct GenericWebhookTests {
    static func post(_ client: some TestClientProtocol, key: String, _ body: [String: Any]) async throws -> TestResponse {
        try await client.execute(uri: "/api/v1/webhooks/generic", method: .post, headers: .auth(key), body: jsonBody(body))
    }

    /// Checks the signature the way docs/api.md tells receivers to, with an HMAC of its own.
    static func verify(_ header: String?, body: [UInt8], secret: String) -> Bool {
        guard let header else { return false }
        var fields: [String: String] = [:]
        for part in header.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1)
            if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) }
        }
        guard let t = fields["t"], let v1 = fields["v1"], let seconds = Double(t), abs(Date().timeIntervalSince1970 - seconds) < 300 else { return false }
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(t).".utf8) + body, using: SymmetricKey(data: Data(secret.utf8)))
        return mac.map { String(format: "%02x", $0) }.joined() == v1
    }

    @Test func waitAnswersWithTheReply() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await env.withWorker(responder: EchoResponder()) {
                try await env.application().test(.router) { client in
                    let response = try await Self.post(client, key: key, ["message": "ping", "metadata": ["ticket": 42, "from": "crm"], "wait": 30])
                    #expect(response.status == .ok)
                    #expect(response.json["messageId"] is Int)
                    let reply = try #require(response.json["response"] as? [String: Any])
                    #expect(reply["text"] as? String == EchoResponder.reply(to: "ping"))
                    #expect((reply["metadata"] as? [String: Any])?["topic"] as? String == "echo")
                    #expect((response.json["metadata"] as? [String: Any])?["ticket"] as? Int == 42, "the request's metadata is echoed")

                    let failed = try await Self.post(client, key: key, ["message": "/fail on purpose", "wait": 30])
                    #expect(failed.status == .badGateway, "a turn that fails within wait answers its error")
                    #expect(failed.errorCode == "responder_failed")
                }
            }
        }
    }

    @Test func aTurnSlowerThanWaitIs202WithTheEventsURL() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await env.withWorker(responder: EchoResponder(chunkDelay: .seconds(1))) {
                try await env.application().test(.router) { client in
                    let response = try await Self.post(client, key: key, ["message": "take your time", "wait": 0.2])
                    #expect(response.status == .accepted)
                    let id = try #require(response.json["messageId"] as? Int)
                    #expect(response.json["events"] as? String == "/api/v1/messages/\(id)/events")
                    #expect(response.headers[.location] == "/api/v1/messages/\(id)/events")
                }
            }
        }
    }

    @Test func badInputIsRefusedBeforeAnythingIsStored() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            try await env.application().test(.router) { client in
                let cases: [([String: Any], String)] = [
                    ([:], "message"),
                    (["message": ""], "message"),
                    (["message": "hi", "metadata": "not an object"], "metadata"),
                    (["message": "hi", "wait": 61], "wait"),
                    (["message": "hi", "wait": "soon"], "wait"),
                    (["message": "hi", "colour": "blue"], "colour"),
                    (["message": "hi", "callbackUrl": "ftp://example.com/x"], "callbackUrl"),
                    (["message": "hi", "callbackUrl": "not a url"], "callbackUrl"),
                ]
                for (body, field) in cases {
                    let response = try await Self.post(client, key: key, body)
                    #expect(response.status == .badRequest, "\(body)")
                    #expect(response.errorCode == "invalid_field", "\(body)")
                    #expect(response.errorMessage?.hasPrefix(field) == true, "\(body): \(response.errorMessage ?? "")")
                }
                try await client.execute(
                    uri: "/api/v1/webhooks/generic", method: .post, headers: .auth(key), body: ByteBuffer(string: "{\"message\":")
                ) { #expect($0.status == .badRequest) }
                try await client.execute(
                    uri: "/api/v1/webhooks/generic", method: .post, headers: .auth(key),
                    body: jsonBody(["message": String(repeating: "x", count: 300 * 1024)])
                ) { #expect($0.status == .contentTooLarge) }
                try await client.execute(
                    uri: "/api/v1/webhooks/generic", method: .post, headers: .auth("sk_wrong"), body: jsonBody(["message": "hi"])
                ) { #expect($0.status == .unauthorized) }
                #expect(try await env.stores.chats.chats(ownerID: user.id, limit: 10, beforeID: nil).isEmpty, "nothing stored")
            }
        }
    }

    @Test func callbacksToPrivateAddressesAreRefusedUnlessAllowed() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            try await env.application().test(.router) { client in
                try await client.execute(uri: "/api/v1/webhooks/generic/secret", method: .post, headers: .auth(key)) { #expect($0.status == .created) }
                for url in ["http://127.0.0.1:9/hook", "http://10.1.2.3/hook", "http://169.254.169.254/latest/meta-data", "http://[::1]/x",
                            "http://192.168.1.1/", "http://172.16.0.5/", "http://localhost:8080/hook"] {
                    let response = try await Self.post(client, key: key, ["message": "hi", "callbackUrl": url])
                    #expect(response.status == .badRequest, "\(url)")
                    #expect(response.errorMessage?.hasPrefix("callbackUrl") == true, "\(url)")
                }
                #expect(try await env.stores.chats.chats(ownerID: user.id, limit: 10, beforeID: nil).isEmpty, "nothing stored")
            }
            // Allowed by configuration, loopback is accepted.
            try await env.application(settings: APISettings(allowPrivateCallbacks: true)).test(.router) { client in
                let response = try await Self.post(client, key: key, ["message": "hi", "callbackUrl": "http://127.0.0.1:9/hook"])
                #expect(response.status == .accepted)
                #expect(response.json["callback"] as? String == "pending")
            }
        }
        #expect(CallbackAddress.isPublic([93, 184, 216, 34]))
        #expect(!CallbackAddress.isPublic([100, 64, 0, 1]))
        #expect(!CallbackAddress.isPublic([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]), "IPv4-mapped loopback")
        #expect(!CallbackAddress.isPublic([0xfe, 0x80] + Array(repeating: 0, count: 13) + [1]))
        #expect(!CallbackAddress.isPublic([0xfd, 0x12] + Array(repeating: 0, count: 14)))
    }

    @Test func aCallbackNeedsASigningSecret() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await env.application(settings: APISettings(allowPrivateCallbacks: true)).test(.router) { client in
                let response = try await Self.post(client, key: key, ["message": "hi", "callbackUrl": "http://127.0.0.1:9/hook"])
                #expect(response.status == .badRequest)
                #expect(response.errorMessage?.contains("/api/v1/webhooks/generic/secret") == true)
            }
        }
    }

    @Test func theReplyIsPostedToTheCallbackSignedAndRetriedAfterA500() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            let receiver = CallbackReceiver(failFirst: 1)
            let port = try TestServices.freePort()
            let server = Task { try await receiver.application(port: port).runService(gracefulShutdownSignals: []) }
            defer { server.cancel() }
            let deliveries = ChannelRegistry.configured(
                stores: env.stores, secrets: .development(), whatsAppGraphURL: "http://127.0.0.1:9", allowPrivateCallbacks: true).deliveries
            try await env.withWorker(responder: EchoResponder(), deliveries: deliveries) {
                try await env.application(settings: APISettings(allowPrivateCallbacks: true)).test(.router) { client in
                    let secret = try await client.execute(uri: "/api/v1/webhooks/generic/secret", method: .post, headers: .auth(key)) { response in
                        #expect(response.status == .created)
                        return try #require(response.json["secret"] as? String)
                    }
                    #expect(secret.hasPrefix("whsec_"))
                    let response = try await Self.post(
                        client, key: key, ["message": "call me back", "metadata": ["ticket": "T-7"], "callbackUrl": "http://127.0.0.1:\(port)/hook"])
                    #expect(response.status == .accepted)
                    let messageID = try #require(response.json["messageId"] as? Int)

                    let received = try await receiver.waitFor(2)
                    #expect(received.count == 2, "the 500 was retried")
                    let last = try #require(received.last)
                    #expect(Self.verify(last.signature, body: last.body, secret: secret), "signed with the key's secret")
                    #expect(!Self.verify(last.signature, body: last.body + [32], secret: secret), "the signature covers the body")
                    #expect(received.first?.delivery == last.delivery, "the same delivery id on every attempt")
                    let object = try #require(try JSONSerialization.jsonObject(with: Data(last.body)) as? [String: Any])
                    #expect(object["messageId"] as? Int == messageID)
                    #expect((object["response"] as? [String: Any])?["text"] as? String == EchoResponder.reply(to: "call me back"))
                    #expect((object["metadata"] as? [String: Any])?["ticket"] as? String == "T-7")

                    // The reply is recorded as delivered.
                    var delivered = false
                    for _ in 0..<100 {
                        let replyID = try #require(object["replyId"] as? Int)
                        if try await env.stores.messages.message(id: Int64(replyID), ownerID: user.id)?.deliveredAt != nil { delivered = true; break }
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    #expect(delivered)

                    // A rotated secret signs what comes next; the old one no longer verifies.
                    let rotated = try await client.execute(uri: "/api/v1/webhooks/generic/secret", method: .post, headers: .auth(key)) {
                        try #require($0.json["secret"] as? String)
                    }
                    #expect(rotated != secret)
                    // A secret is never kept for an Idempotency-Key replay: each answer is a new one.
                    var headers = HTTPFields.auth(key)
                    headers[HTTPField.Name("Idempotency-Key")!] = "rotate-once"
                    let keyed = try await client.execute(uri: "/api/v1/webhooks/generic/secret", method: .post, headers: headers) {
                        try #require($0.json["secret"] as? String)
                    }
                    let keyedAgain = try await client.execute(uri: "/api/v1/webhooks/generic/secret", method: .post, headers: headers) {
                        try #require($0.json["secret"] as? String)
                    }
                    #expect(keyed != keyedAgain)
                    let latest = try await client.execute(uri: "/api/v1/webhooks/generic/secret", method: .post, headers: .auth(key)) {
                        try #require($0.json["secret"] as? String)
                    }
                    _ = try await Self.post(client, key: key, ["message": "again", "callbackUrl": "http://127.0.0.1:\(port)/hook"])
                    let third = try #require(try await receiver.waitFor(3).dropFirst(2).first)
                    #expect(Self.verify(third.signature, body: third.body, secret: latest))
                    #expect(!Self.verify(third.signature, body: third.body, secret: secret))
                }
            }
        }
    }
}
