import APIServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Queue
import RedisClient
import Storage
import SwitchboardCore
import Testing
import Turns

@Suite("Accounts, chats and messages")
struct ChatsAndMessagesTests {
    @Test func authenticationAcceptsBearerAndXAPIKeyAndRejectsTheRest() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            try await env.application().test(.router) { client in
                try await client.execute(uri: "/api/v1/me", method: .get, headers: [.authorization: "Bearer \(key)"]) { response in
                    #expect(response.status == .ok)
                    #expect(response.json["email"] as? String == user.email)
                }
                try await client.execute(uri: "/api/v1/me", method: .get, headers: [HTTPField.Name("X-API-Key")!: key]) { response in
                    #expect(response.status == .ok)
                }
                try await client.execute(uri: "/api/v1/me", method: .get) { response in
                    #expect(response.status == .unauthorized)
                    #expect(response.errorCode == "unauthorized")
                    #expect(response.headers[.wwwAuthenticate] == "Bearer")
                }
                try await client.execute(uri: "/api/v1/me", method: .get, headers: [.authorization: "Bearer sk_\(String(repeating: "0", count: 48))"]) { response in
                    #expect(response.status == .unauthorized)
                }
                try await client.execute(uri: "/api/v1/chats", method: .get, headers: [.authorization: "Basic abc"]) { response in
                    #expect(response.status == .unauthorized)
                }
            }
        }
    }

    @Test func aRevokedKeyStopsAtOnceOnEveryNodeThatCachedIt() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            // Two routers are two api nodes, each with its own key cache, sharing Redis and MariaDB.
            let nodes = [env.application(), env.application()]
            func status(_ node: Int) async throws -> HTTPResponse.Status {
                try await nodes[node].test(.router) { client in
                    try await client.execute(uri: "/api/v1/me", method: .get, headers: .auth(key)) { $0.status }
                }
            }
            #expect(try await status(0) == .ok)
            #expect(try await status(1) == .ok)
            let keys = try await env.stores.apiKeys.apiKeys(ownerID: user.id)
            #expect(try await Accounts(stores: env.stores, redis: env.redis).revokeAPIKey(id: keys[0].id))
            #expect(try await status(0) == .unauthorized)
            #expect(try await status(1) == .unauthorized)
        }
    }

    @Test func accountsStoreOnlyTheHashOfAKey() async throws {
        try await TestEnvironment.with { env in
            let accounts = Accounts(stores: env.stores)
            _ = try await accounts.createUser(email: "Someone@Example.com")
            await #expect(throws: Accounts.Failure.userExists("someone@example.com")) {
                try await accounts.createUser(email: "someone@example.com")
            }
            await #expect(throws: Accounts.Failure.noSuchUser("nobody@example.com")) {
                try await accounts.createAPIKey(userEmail: "nobody@example.com")
            }
            let created = try await accounts.createAPIKey(userEmail: "someone@example.com")
            #expect(created.secret.hasPrefix("sk_"))
            #expect(created.key.keyHash == APIKeySecret.hash(created.secret))
            #expect(created.key.keyHash != created.secret)
            #expect(!created.secret.contains(created.key.keyHash))
        }
    }

    @Test func chatsAreCreatedListedByCursorAndDeleted() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await env.application().test(.router) { client in
                var ids: [Int] = []
                for i in 0..<5 {
                    try await client.execute(uri: "/api/v1/chats", method: .post, headers: .auth(key), body: jsonBody(["title": "chat \(i)"])) { response in
                        #expect(response.status == .created)
                        #expect(response.json["title"] as? String == "chat \(i)")
                        ids.append(response.json["id"] as? Int ?? 0)
                    }
                }
                try await client.execute(uri: "/api/v1/chats", method: .post, headers: .auth(key), body: jsonBody([:])) { response in
                    #expect(response.status == .created)
                    #expect(response.json["title"] as? String == "New chat")
                    ids.append(response.json["id"] as? Int ?? 0)
                }
                // Newest first, two pages of 4 and 2.
                var seen: [Int] = []
                var cursor: String?
                repeat {
                    let uri = "/api/v1/chats?limit=4" + (cursor.map { "&cursor=\($0)" } ?? "")
                    cursor = try await client.execute(uri: uri, method: .get, headers: .auth(key)) { response in
                        #expect(response.status == .ok)
                        seen += (response.json["data"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? Int }
                        return response.json["nextCursor"] as? String
                    }
                } while cursor != nil
                #expect(seen == ids.reversed())

                try await client.execute(uri: "/api/v1/chats/\(ids[0])", method: .get, headers: .auth(key)) { response in
                    #expect(response.status == .ok)
                }
                try await client.execute(uri: "/api/v1/chats/\(ids[0])", method: .delete, headers: .auth(key)) { response in
                    #expect(response.status == .noContent)
                }
                try await client.execute(uri: "/api/v1/chats/\(ids[0])", method: .get, headers: .auth(key)) { response in
                    #expect(response.status == .notFound)
                    #expect(response.errorCode == "not_found")
                }
                try await client.execute(uri: "/api/v1/chats/\(ids[0])", method: .delete, headers: .auth(key)) { response in
                    #expect(response.status == .notFound)
                }
                try await client.execute(uri: "/api/v1/chats?limit=0", method: .get, headers: .auth(key)) { response in
                    #expect(response.status == .badRequest)
                    #expect(response.errorMessage?.hasPrefix("limit") == true)
                }
                try await client.execute(uri: "/api/v1/chats?cursor=abc", method: .get, headers: .auth(key)) { response in
                    #expect(response.status == .badRequest)
                    #expect(response.errorMessage?.hasPrefix("cursor") == true)
                }
            }
        }
    }

    @Test func aMessageIsAcceptedOnlyOnceStoredAndQueued() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            try await env.application().test(.router) { client in
                let accepted = try await client.execute(
                    uri: "/api/v1/messages", method: .post, headers: .auth(key), body: jsonBody(["content": "hello there"])
                ) { response in
                    #expect(response.status == .accepted)
                    return response.json
                }
                let messageID = try #require(accepted["messageId"] as? Int)
                let chatID = try #require(accepted["chatId"] as? Int)
                #expect(accepted["events"] as? String == "/api/v1/messages/\(messageID)/events")
                let stored = try #require(try await env.stores.messages.message(id: Int64(messageID), ownerID: user.id))
                #expect(stored.status == .queued)
                #expect(stored.content == "hello there")
                #expect(try await env.jobs.stats(for: .ai).depth == 1)
                let chat = try #require(try await env.stores.chats.chat(id: Int64(chatID), ownerID: user.id))
                #expect(chat.title == "hello there")

                // A second message in the same chat.
                try await client.execute(
                    uri: "/api/v1/chats/\(chatID)/messages", method: .post, headers: .auth(key), body: jsonBody(["content": "second"])
                ) { response in
                    #expect(response.status == .accepted)
                    #expect(response.json["chatId"] as? Int == chatID)
                }
                #expect(try await env.jobs.stats(for: .ai).depth == 2)
                // ... or by chatId in POST /messages.
                try await client.execute(
                    uri: "/api/v1/messages", method: .post, headers: .auth(key), body: jsonBody(["content": "third", "chatId": chatID])
                ) { response in
                    #expect(response.status == .accepted)
                    #expect(response.json["chatId"] as? Int == chatID)
                }
                try await client.execute(
                    uri: "/api/v1/chats/999999/messages", method: .post, headers: .auth(key), body: jsonBody(["content": "x"])
                ) { response in
                    #expect(response.status == .notFound)
                }
                // An id no row can have is the same 404, never a database error.
                try await client.execute(
                    uri: "/api/v1/messages", method: .post, headers: .auth(key), body: jsonBody(["content": "x", "chatId": -286612654])
                ) { response in
                    #expect(response.status == .notFound)
                }
                #expect(try await env.jobs.stats(for: .ai).depth == 3)

                // Newest first; then everything after the first message, oldest first.
                try await client.execute(uri: "/api/v1/chats/\(chatID)/messages?limit=2", method: .get, headers: .auth(key)) { response in
                    #expect(response.status == .ok)
                    let contents = (response.json["data"] as? [[String: Any]] ?? []).compactMap { $0["content"] as? String }
                    #expect(contents == ["third", "second"])
                    let cursor = try #require(response.json["nextCursor"] as? String)
                    try await client.execute(uri: "/api/v1/chats/\(chatID)/messages?cursor=\(cursor)", method: .get, headers: .auth(key)) { next in
                        let rest = (next.json["data"] as? [[String: Any]] ?? []).compactMap { $0["content"] as? String }
                        #expect(rest == ["hello there"])
                        #expect(next.json["nextCursor"] is NSNull)
                    }
                }
                try await client.execute(uri: "/api/v1/chats/\(chatID)/messages?after=\(messageID)", method: .get, headers: .auth(key)) { response in
                    let contents = (response.json["data"] as? [[String: Any]] ?? []).compactMap { $0["content"] as? String }
                    #expect(contents == ["second", "third"])
                }

                try await client.execute(uri: "/api/v1/messages/\(messageID)", method: .get, headers: .auth(key)) { response in
                    #expect(response.status == .ok)
                    let message = response.json["message"] as? [String: Any] ?? [:]
                    #expect(message["status"] as? String == "queued")
                    #expect(message["content"] as? String == "hello there")
                    #expect(message["deliveredAt"] is NSNull)
                    #expect((response.json["tasks"] as? [Any])?.isEmpty == true)
                    #expect(response.json["reply"] is NSNull)
                }
            }
        }
    }

    @Test func aMessageWhoseJobCannotBeQueuedIsMarkedFailed() async throws {
        struct BrokenQueue: JobProducer {
            func enqueue<P: JobPayload>(_ job: P, on queue: QueueName, options: EnqueueOptions) async throws -> JobID {
                throw RedisError.unavailable("queue is down")
            }
        }
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            try await env.application(jobs: BrokenQueue()).test(.router) { client in
                try await client.execute(uri: "/api/v1/messages", method: .post, headers: .auth(key), body: jsonBody(["content": "hi"])) { response in
                    #expect(response.status == .serviceUnavailable)
                    #expect(response.errorCode == "unavailable")
                }
            }
            let chats = try await env.stores.chats.chats(ownerID: user.id, limit: 10, beforeID: nil)
            let messages = try await env.stores.messages.messages(chatID: chats[0].id, ownerID: user.id, limit: 10, beforeID: nil, afterID: nil)
            #expect(messages.map(\.status) == [.failed])
            // Its stream ends, so a client already listening is not left waiting.
            let entries = try await TurnStreamReader(redis: env.redis).all(messageID: messages[0].id)
            #expect(entries.map(\.type) == ["error"])
        }
    }

    @Test func stopEndsAQueuedTurnAndRefusesAFinishedOne() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            try await env.application().test(.router) { client in
                let id = try await client.execute(uri: "/api/v1/messages", method: .post, headers: .auth(key), body: jsonBody(["content": "hi"])) {
                    $0.json["messageId"] as? Int ?? 0
                }
                try await client.execute(uri: "/api/v1/messages/\(id)/stop", method: .post, headers: .auth(key)) { response in
                    #expect(response.status == .accepted)
                    #expect(response.json["status"] as? String == "cancelled")
                }
                #expect(try await env.stores.messages.message(id: Int64(id), ownerID: user.id)?.status == .cancelled)
                let entries = try await TurnStreamReader(redis: env.redis).all(messageID: Int64(id))
                #expect(entries.map(\.type) == ["error"])
                #expect(entries.last?.event == .error(code: "cancelled", message: "stopped by the user"))
                try await client.execute(uri: "/api/v1/messages/\(id)/stop", method: .post, headers: .auth(key)) { response in
                    #expect(response.status == .conflict)
                }
                try await client.execute(uri: "/api/v1/messages/424242/stop", method: .post, headers: .auth(key)) { response in
                    #expect(response.status == .notFound)
                }
            }
        }
    }
}
