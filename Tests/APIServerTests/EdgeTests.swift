@testable import APIServer
import Channels
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Queue
import RedisClient
import Storage
import SwitchboardCore
import Testing
import Turns

@Suite("Errors, idempotency, rate limits, scoping")
struct EdgeTests {
    /// Bytes the HTTP parser cannot read reach no route: the listener answers them with the JSON
    /// error shape (400 `malformed_request`) and closes, after a request it answered too.
    @Test func aRequestTheParserCannotReadIsAJSON400() async throws {
        try await TestEnvironment.with { env in
            try await LiveServer.with(env.dependencies()) { port in
                for request in [
                    "GARBAGE / HTTP/1.1\r\nHost: x\r\n\r\n",
                    "POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
                    "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n\u{01}\u{02} nonsense\r\n\r\n",
                ] {
                    let answer = try await RawExchange.send(Array(request.utf8), port: port)
                    let last = answer.text.components(separatedBy: "HTTP/1.1 ").last ?? ""
                    #expect(last.hasPrefix("400 ") && last.lowercased().contains("content-type: application/json"), "\(request): \(answer.text)")
                    let body = last.components(separatedBy: "\r\n\r\n").dropFirst().joined()
                    let error = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: [String: Any]]
                    #expect(error?["error"]?["code"] as? String == "malformed_request", "\(body)")
                    #expect(error?["error"]?["status"] as? Int == 400)
                    #expect(answer.closed, "the connection stayed open")
                }
            }
        }
    }

    @Test func malformedWrongAndOversizedInputIsA400NamingTheField() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            let settings = APISettings(maxBodyBytes: 4096, maxMessageCharacters: 100, maxTitleCharacters: 10)
            try await env.application(settings: settings).test(.router) { client in
                let cases: [(String, String, String)] = [
                    ("/api/v1/messages", "{not json", "body"),
                    ("/api/v1/messages", "[1,2]", "body"),
                    ("/api/v1/messages", "{}", "content"),
                    ("/api/v1/messages", #"{"content": 12}"#, "content"),
                    ("/api/v1/messages", #"{"content": null}"#, "content"),
                    ("/api/v1/messages", #"{"content": "   "}"#, "content"),
                    ("/api/v1/messages", #"{"content": "\#(String(repeating: "x", count: 101))"}"#, "content"),
                    ("/api/v1/messages", #"{"content": "hi", "chatId": "seven"}"#, "chatId"),
                    ("/api/v1/messages", #"{"content": "hi", "title": "much too long a title"}"#, "title"),
                    ("/api/v1/chats", #"{"title": 5}"#, "title"),
                    ("/api/v1/messages", "", "body"),
                ]
                for (uri, body, field) in cases {
                    try await client.execute(uri: uri, method: .post, headers: .auth(key), body: ByteBuffer(string: body)) { response in
                        #expect(response.status == .badRequest, "\(body)")
                        #expect(response.errorMessage?.hasPrefix(field + ":") == true, "\(body): \(response.errorMessage ?? "")")
                        #expect((response.json["error"] as? [String: Any])?["status"] as? Int == 400)
                    }
                }
                try await client.execute(
                    uri: "/api/v1/messages", method: .post, headers: .auth(key), body: ByteBuffer(string: String(repeating: "a", count: 5000))
                ) { response in
                    #expect(response.status == .contentTooLarge)
                    #expect(response.errorCode == "payload_too_large")
                }
                try await client.execute(
                    uri: "/api/v1/messages", method: .post, headers: [.authorization: "Bearer \(key)", .contentType: "text/plain"],
                    body: ByteBuffer(string: "hi")
                ) { response in
                    #expect(response.status == .unsupportedMediaType)
                }
            }
        }
    }

    @Test func unknownRoutesAre404AndWrongMethods405() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await env.application().test(.router) { client in
                try await client.execute(uri: "/api/v1/nothing", method: .get, headers: .auth(key)) { response in
                    #expect(response.status == .notFound)
                    #expect(response.errorCode == "not_found")
                }
                try await client.execute(uri: "/nowhere", method: .get) { response in
                    #expect(response.status == .notFound)
                    #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
                }
                try await client.execute(uri: "/api/v1/chats", method: .put, headers: .auth(key)) { response in
                    #expect(response.status == .methodNotAllowed)
                    #expect(response.errorCode == "method_not_allowed")
                    #expect(response.headers[.allow]?.contains("POST") == true)
                    #expect(response.headers[.allow]?.contains("GET") == true)
                }
                try await client.execute(uri: "/api/v1/messages/5/events", method: .delete, headers: .auth(key)) { response in
                    #expect(response.status == .methodNotAllowed)
                }
                // A literal segment is its own route, not a value of /messages/{messageId}.
                try await client.execute(uri: "/api/v1/messages/stream", method: .get, headers: .auth(key)) { response in
                    #expect(response.status == .methodNotAllowed)
                    #expect(response.headers[.allow] == "POST")
                }
                try await client.execute(uri: "/api/v1/messages/abc", method: .get, headers: .auth(key)) { response in
                    #expect(response.status == .notFound)
                }
                try await client.execute(uri: "/healthz", method: .get) { response in
                    #expect(response.status == .ok)
                }
                // Metrics are on the internal listener only (APIInternalListenerTests).
                try await client.execute(uri: "/metrics", method: .get) { response in
                    #expect(response.status == .notFound)
                }
            }
        }
    }

    @Test func aMegabyteOfGarbageIsAnswered4xxOnEveryPost() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            var generator = SystemRandomNumberGenerator()
            let garbage = (0..<1_048_576).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let small = Array(garbage.prefix(2048))
            let chat = try await env.stores.chats.createChat(ownerID: user.id, title: "t", channel: .web, externalThreadKey: nil)
            let posts = ["/api/v1/chats", "/api/v1/messages", "/api/v1/messages/stream", "/api/v1/chats/\(chat.id)/messages"]
            try await env.application().test(.router) { client in
                for uri in posts {
                    for body in [garbage, small] {
                        for headers: HTTPFields in [.auth(key), [.authorization: "Bearer \(key)"], [:]] {
                            try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(bytes: body)) { response in
                                #expect((400..<500).contains(response.status.code), "\(uri) \(body.count) → \(response.status)")
                                #expect(response.errorCode != nil)
                            }
                        }
                    }
                }
            }
            #expect(try await env.jobs.stats(for: .ai).depth == 0)
        }
    }

    @Test func everyRouteHidesAnotherUsersRows() async throws {
        try await TestEnvironment.with { env in
            let (owner, _) = try await env.makeUser()
            let (_, intruderKey) = try await env.makeUser()
            let (chat, message) = try await env.stores.messages.startChat(
                title: "private", externalThreadKey: nil, firstMessage: NewMessage(chatID: 0, ownerID: owner.id, content: "secret"))
            try await TurnStreamWriter(redis: env.redis, messageID: message.id).append(.chunk("secret"))
            let probes: [(HTTPRequest.Method, String, String?)] = [
                (.get, "/api/v1/chats/\(chat.id)", nil),
                (.delete, "/api/v1/chats/\(chat.id)", nil),
                (.get, "/api/v1/chats/\(chat.id)/messages", nil),
                (.post, "/api/v1/chats/\(chat.id)/messages", #"{"content":"hi"}"#),
                (.post, "/api/v1/messages", #"{"content":"hi","chatId":\#(chat.id)}"#),
                (.post, "/api/v1/messages/stream", #"{"content":"hi","chatId":\#(chat.id)}"#),
                (.get, "/api/v1/messages/\(message.id)", nil),
                (.post, "/api/v1/messages/\(message.id)/stop", nil),
                (.get, "/api/v1/messages/\(message.id)/events", nil),
            ]
            try await env.application().test(.router) { client in
                for (method, uri, body) in probes {
                    try await client.execute(uri: uri, method: method, headers: .auth(intruderKey), body: body.map { ByteBuffer(string: $0) }) { response in
                        #expect(response.status == .notFound, "\(method) \(uri)")
                        #expect(response.errorCode == "not_found")
                    }
                }
                try await client.execute(uri: "/api/v1/chats", method: .get, headers: .auth(intruderKey)) { response in
                    #expect((response.json["data"] as? [Any])?.isEmpty == true)
                }
            }
            // Nothing changed for the owner.
            #expect(try await env.stores.chats.chat(id: chat.id, ownerID: owner.id) != nil)
            #expect(try await env.stores.messages.message(id: message.id, ownerID: owner.id)?.status == .queued)
            #expect(try await env.stores.messages.messages(chatID: chat.id, ownerID: owner.id, limit: 10, beforeID: nil, afterID: nil).count == 1)
            #expect(try await env.jobs.stats(for: .ai).depth == 0)
        }
    }

    @Test func idempotencyKeysReplayTheFirstAnswerAndRejectADifferentBody() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            var fields = HTTPFields.auth(key)
            fields[HTTPField.Name("Idempotency-Key")!] = "order-42"
            let headers = fields
            try await env.application().test(.router) { client in
                let first = try await client.execute(uri: "/api/v1/messages", method: .post, headers: headers, body: ByteBuffer(string: #"{"content":"once"}"#)) {
                    #expect($0.status == .accepted)
                    return $0.text
                }
                try await client.execute(uri: "/api/v1/messages", method: .post, headers: headers, body: ByteBuffer(string: #"{"content":"once"}"#)) { response in
                    #expect(response.status == .accepted)
                    #expect(response.text == first)
                    #expect(response.headers[HTTPField.Name("Idempotent-Replayed")!] == "true")
                }
                try await client.execute(uri: "/api/v1/messages", method: .post, headers: headers, body: ByteBuffer(string: #"{"content":"twice"}"#)) { response in
                    #expect(response.status == .unprocessableContent)
                    #expect(response.errorCode == "idempotency_key_reused")
                }
                // The same key on another route is another request.
                try await client.execute(uri: "/api/v1/chats", method: .post, headers: headers, body: ByteBuffer(string: #"{"content":"once"}"#)) { response in
                    #expect(response.status == .unprocessableContent)
                }
                // A request still running holds its key: a concurrent duplicate gets 409.
                var busy = HTTPFields.auth(key)
                busy[HTTPField.Name("Idempotency-Key")!] = "busy"
                let body = ByteBuffer(string: #"{"title":"x"}"#)
                let lock = IdempotencyStore.redisKey(userID: user.id, key: "busy")
                let fingerprint = IdempotencyStore.fingerprint(method: .post, path: "/api/v1/chats", body: body)
                _ = try await env.redis.set(lock, "P" + fingerprint, expiration: .seconds(30))
                try await client.execute(uri: "/api/v1/chats", method: .post, headers: busy, body: body) { response in
                    #expect(response.status == .conflict)
                    #expect(response.errorCode == "idempotency_key_in_use")
                }
                var long = HTTPFields.auth(key)
                long[HTTPField.Name("Idempotency-Key")!] = String(repeating: "k", count: 256)
                try await client.execute(uri: "/api/v1/chats", method: .post, headers: long, body: body) { response in
                    #expect(response.status == .badRequest)
                    #expect(response.errorMessage?.hasPrefix("Idempotency-Key") == true)
                }
            }
            let chats = try await env.stores.chats.chats(ownerID: user.id, limit: 10, beforeID: nil)
            #expect(chats.count == 1)
            #expect(try await env.jobs.stats(for: .ai).depth == 1)
        }
    }

    @Test func concurrentDuplicatesCreateOneMessage() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            var fields = HTTPFields.auth(key)
            fields[HTTPField.Name("Idempotency-Key")!] = "race"
            let headers = fields
            try await env.application().test(.router) { client in
                let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                    for _ in 0..<8 {
                        group.addTask {
                            try await client.execute(uri: "/api/v1/messages", method: .post, headers: headers, body: ByteBuffer(string: #"{"content":"race"}"#)) {
                                Int($0.status.code)
                            }
                        }
                    }
                    var all: [Int] = []
                    for try await status in group { all.append(status) }
                    return all
                }
                #expect(statuses.allSatisfy { $0 == 202 || $0 == 409 })
                #expect(statuses.contains(202))
            }
            let chats = try await env.stores.chats.chats(ownerID: user.id, limit: 10, beforeID: nil)
            #expect(chats.count == 1)
            #expect(try await env.jobs.stats(for: .ai).depth == 1)
        }
    }

    /// The Redis record of a key is written only after the answer, so it is missing when the
    /// first attempt's answer was lost (a dropped connection after the commit, a node killed
    /// before it recorded the key). The retry finds the stored message by its key all the same.
    @Test func aRetryWhoseFirstAnswerWasLostGetsTheStoredMessageNotASecondOne() async throws {
        try await TestEnvironment.with { env in
            let (user, userKey) = try await env.makeUser()
            let (_, otherKey) = try await env.makeUser()
            struct Accepted: Decodable { var messageId: Int64; var chatId: Int64 }
            try await env.application().test(.router) { client in
                @Sendable func post(_ content: String, key idempotencyKey: String, as apiKey: String) async throws -> (Int, Accepted?, String?) {
                    var fields = HTTPFields.auth(apiKey)
                    fields[HTTPField.Name("Idempotency-Key")!] = idempotencyKey
                    return try await client.execute(
                        uri: "/api/v1/messages", method: .post, headers: fields, body: ByteBuffer(string: #"{"content":"\#(content)"}"#)
                    ) { response in
                        (Int(response.status.code), try? JSONDecoder().decode(Accepted.self, from: Data(response.body.readableBytesView)),
                         response.errorCode)
                    }
                }
                let (_, first, _) = try await post("once", key: "lost-1", as: userKey)
                let firstID = try #require(first?.messageId)
                _ = try await env.redis.del(IdempotencyStore.redisKey(userID: user.id, key: "lost-1"))
                let (status, again, _) = try await post("once", key: "lost-1", as: userKey)
                #expect(status == 202)
                #expect(again?.messageId == firstID)
                #expect(again?.chatId == first?.chatId)
                #expect(try await env.jobs.stats(for: .ai).depth == 1, "its turn is queued once")
                // The same key with other content is another request, record or not.
                _ = try await env.redis.del(IdempotencyStore.redisKey(userID: user.id, key: "lost-1"))
                let (reusedStatus, _, reusedCode) = try await post("twice", key: "lost-1", as: userKey)
                #expect(reusedStatus == 422)
                #expect(reusedCode == "idempotency_key_reused")

                // Stored by an attempt that stopped before it queued the turn: the retry queues it.
                let stranded = try await env.stores.messages.startChat(
                    title: "stranded", externalThreadKey: nil,
                    firstMessage: NewMessage(
                        chatID: 0, ownerID: user.id, role: .user, content: "stranded", status: .queued, channel: .web,
                        externalID: WebSubmission.externalID(userID: user.id, idempotencyKey: "lost-2"))
                ).message
                let (strandedStatus, retried, _) = try await post("stranded", key: "lost-2", as: userKey)
                #expect(strandedStatus == 202)
                #expect(retried?.messageId == stranded.id)
                #expect(try await env.jobs.stats(for: .ai).depth == 2)

                // Another user's identical key is theirs alone.
                let (otherStatus, others, _) = try await post("once", key: "lost-1", as: otherKey)
                #expect(otherStatus == 202)
                #expect(others.map { $0.messageId != firstID } == true)
            }
            #expect(try await env.stores.chats.chats(ownerID: user.id, limit: 10, beforeID: nil).count == 2)
        }
    }

    @Test func theRateLimitAnswers429WithRetryAfter() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            let (_, otherKey) = try await env.makeUser()
            let limits = RateLimitSettings(perUser: RateLimitRule(limit: 3, period: .seconds(60)), perIP: nil)
            try await env.application(limits: limits).test(.router) { client in
                for expected in [2, 1, 0] {
                    try await client.execute(uri: "/api/v1/chats", method: .get, headers: .auth(key)) { response in
                        #expect(response.status == .ok)
                        #expect(response.headers[HTTPField.Name("RateLimit-Limit")!] == "3")
                        #expect(response.headers[HTTPField.Name("RateLimit-Remaining")!] == "\(expected)")
                    }
                }
                try await client.execute(uri: "/api/v1/chats", method: .get, headers: .auth(key)) { response in
                    #expect(response.status == .tooManyRequests)
                    #expect(response.errorCode == "rate_limited")
                    let retryAfter = Int(response.headers[HTTPField.Name("Retry-After")!] ?? "") ?? 0
                    #expect((1...20).contains(retryAfter))
                    #expect(response.headers[HTTPField.Name("RateLimit-Remaining")!] == "0")
                }
                // Another user has a budget of their own.
                try await client.execute(uri: "/api/v1/chats", method: .get, headers: .auth(otherKey)) { response in
                    #expect(response.status == .ok)
                }
            }
            // Per IP, before authentication: even requests without a key count.
            let perIP = RateLimitSettings(perUser: nil, perIP: RateLimitRule(limit: 2, period: .seconds(60)))
            try await env.application(limits: perIP).test(.router) { client in
                var codes: [Int] = []
                for _ in 0..<3 {
                    codes.append(try await client.execute(uri: "/api/v1/chats", method: .get) { Int($0.status.code) })
                }
                #expect(codes == [401, 401, 429])
            }
        }
    }
}
