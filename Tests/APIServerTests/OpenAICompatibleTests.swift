/// The OpenAI-compatible endpoint end to end against real Redis and MariaDB and a worker running
/// the echo responder: `/v1/models`, non-streaming and streamed completions with usage, the
/// request's earlier messages stored as the chat's history, OpenAI-shaped errors for bad input
/// (nothing stored) and for a wrong key, a failing turn.
import APIServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOHTTP1
import Storage
import SwitchboardCore
import Testing
import TurnTestSupport
import Turns

@Suite("OpenAI-compatible endpoint", .serialized)
struct OpenAICompatibleTests {
    static func completion(_ client: some TestClientProtocol, key: String, _ body: [String: Any]) async throws -> TestResponse {
        try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .auth(key), body: jsonBody(body))
    }

    /// The JSON objects of a streamed answer's `data:` lines, and whether it ended with `[DONE]`.
    static func frames(_ text: String) -> (chunks: [[String: Any]], done: Bool) {
        var chunks: [[String: Any]] = []
        var done = false
        for line in text.split(separator: "\n") where line.hasPrefix("data: ") {
            let payload = line.dropFirst(6)
            if payload == "[DONE]" { done = true; continue }
            if let object = try? JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any] { chunks.append(object) }
        }
        return (chunks, done)
    }

    static func openAIError(_ response: TestResponse) -> [String: Any] {
        (response.json["error"] as? [String: Any]) ?? [:]
    }

    @Test func listsTheModel() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await env.application().test(.router) { client in
                try await client.execute(uri: "/v1/models", method: .get, headers: .auth(key, json: false)) { response in
                    #expect(response.status == .ok)
                    #expect(response.json["object"] as? String == "list")
                    let ids = (response.json["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
                    #expect(ids == ["switchboard"])
                }
            }
        }
    }

    @Test func answersACompletionWithUsageAndKeepsTheEarlierMessagesAsHistory() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            try await env.withWorker(responder: EchoResponder()) {
                try await env.application().test(.router) { client in
                    let response = try await Self.completion(client, key: key, [
                        "model": "any-model-name",
                        "messages": [
                            ["role": "system", "content": "Be brief."],
                            ["role": "user", "content": "My name is Ada."],
                            ["role": "assistant", "content": "Hello Ada."],
                            ["role": "user", "content": [["type": "text", "text": "What is my name?"]]],
                        ],
                    ])
                    #expect(response.status == .ok)
                    #expect(response.json["object"] as? String == "chat.completion")
                    #expect(response.json["model"] as? String == "any-model-name", "the model is echoed back")
                    let choice = try #require((response.json["choices"] as? [[String: Any]])?.first)
                    #expect((choice["message"] as? [String: Any])?["content"] as? String == EchoResponder.reply(to: "What is my name?"))
                    #expect((choice["message"] as? [String: Any])?["role"] as? String == "assistant")
                    #expect(choice["finish_reason"] as? String == "stop")
                    let usage = try #require(response.json["usage"] as? [String: Any])
                    #expect(usage["prompt_tokens"] as? Int == 4)
                    #expect(usage["completion_tokens"] as? Int == 6)
                    #expect(usage["total_tokens"] as? Int == 10)

                    // The request's earlier messages are the chat's history, before the question.
                    let chatID = try #require(response.headers[HTTPField.Name("X-Switchboard-Chat-Id")!].flatMap { Int64($0) })
                    let stored = try await env.stores.messages.messages(chatID: chatID, ownerID: user.id, limit: 10, beforeID: nil, afterID: nil)
                        .sorted { $0.id < $1.id }
                    #expect(stored.map(\.role) == [.system, .user, .assistant, .user, .assistant])
                    #expect(stored.map(\.content).prefix(4) == ["Be brief.", "My name is Ada.", "Hello Ada.", "What is my name?"])
                    #expect(stored.allSatisfy { $0.channel == .api })
                    #expect(stored.prefix(3).allSatisfy { $0.status == .completed })
                }
            }
        }
    }

    @Test func streamsChunksThenTheEndWithUsage() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await env.withWorker(responder: EchoResponder()) {
                try await env.application().test(.router) { client in
                    let response = try await Self.completion(client, key: key, [
                        "model": "switchboard", "stream": true, "stream_options": ["include_usage": true],
                        "messages": [["role": "user", "content": "stream this please"]],
                    ])
                    #expect(response.status == .ok)
                    #expect(response.headers[.contentType]?.hasPrefix("text/event-stream") == true)
                    let (chunks, done) = Self.frames(response.text)
                    #expect(done, "ends with data: [DONE]")
                    #expect(chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" })
                    let choices = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first }
                    let text = choices.compactMap { ($0["delta"] as? [String: Any])?["content"] as? String }.joined()
                    #expect(text == EchoResponder.reply(to: "stream this please"))
                    #expect(choices.filter { $0["finish_reason"] as? String == "stop" }.count == 1)
                    #expect(choices.count > 3, "the reply came in several chunks")
                    let usage = try #require(chunks.last?["usage"] as? [String: Any])
                    #expect(usage["completion_tokens"] as? Int == 5)
                    #expect((chunks.last?["choices"] as? [Any])?.isEmpty == true)

                    // Without include_usage no chunk carries usage.
                    let plain = try await Self.completion(client, key: key, [
                        "model": "switchboard", "stream": true, "messages": [["role": "user", "content": "again"]],
                    ])
                    let (plainChunks, plainDone) = Self.frames(plain.text)
                    #expect(plainDone)
                    #expect(plainChunks.allSatisfy { $0["usage"] == nil })
                }
            }
        }
    }

    @Test func aFailingTurnIsAnOpenAIError() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await env.withWorker(responder: EchoResponder()) {
                try await env.application().test(.router) { client in
                    let response = try await Self.completion(client, key: key, ["model": "m", "messages": [["role": "user", "content": "/fail now"]]])
                    #expect(response.status == .internalServerError)
                    #expect(Self.openAIError(response)["type"] as? String == "server_error")
                    #expect(Self.openAIError(response)["message"] as? String != nil)
                    let streamed = try await Self.completion(
                        client, key: key, ["model": "m", "stream": true, "messages": [["role": "user", "content": "/fail again"]]])
                    #expect(streamed.status == .internalServerError, "failed before anything was streamed: an HTTP error")
                }
            }
        }
    }

    @Test func badInputIsA400InOpenAIsShapeAndStoresNothing() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            // With the rate limits on, as `serve` runs: errors pass through the limiters too.
            try await env.application(limits: RateLimitSettings()).test(.router) { client in
                let bodies: [(String, String?)] = [
                    (#"{"model":"m","messages":[]}"#, "messages"),
                    (#"{"model":"m"}"#, "messages"),
                    (#"{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}"#, "messages[1].role"),
                    (#"{"model":"m","messages":[{"role":"tool","content":"x"},{"role":"user","content":"hi"}]}"#, "messages[0].role"),
                    (#"{"model":"m","messages":[{"role":"user","content":42}]}"#, "messages[0].content"),
                    (#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}"#, "messages[0].content[0]"),
                    (#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":"yes"}"#, "stream"),
                    (#"{"model":"m","messages":[{"role":"user","content":"   "}]}"#, "messages[0].content"),
                    (#"{"model":"m","messages":"#, nil),
                    (#"[1,2]"#, nil),
                ]
                for (body, param) in bodies {
                    try await client.execute(
                        uri: "/v1/chat/completions", method: .post, headers: .auth(key), body: ByteBuffer(string: body)
                    ) { response in
                        #expect(response.status == .badRequest, "\(body)")
                        let error = Self.openAIError(response)
                        #expect(error["type"] as? String == "invalid_request_error", "\(body)")
                        #expect(error["message"] is String)
                        #expect(error["param"] as? String == param, "\(body)")
                    }
                }
                let huge = String(repeating: "x", count: 300 * 1024)
                try await client.execute(
                    uri: "/v1/chat/completions", method: .post, headers: .auth(key),
                    body: jsonBody(["model": "m", "messages": [["role": "user", "content": huge]]])
                ) { response in
                    #expect(response.status == .contentTooLarge)
                    #expect(Self.openAIError(response)["type"] as? String == "invalid_request_error")
                }
                #expect(try await env.stores.chats.chats(ownerID: user.id, limit: 10, beforeID: nil).isEmpty, "nothing stored")
            }
        }
    }

    @Test func aWrongKeyIs401InOpenAIsShape() async throws {
        try await TestEnvironment.with { env in
            try await env.application(limits: RateLimitSettings()).test(.router) { client in
                let wrong = "sk_" + String(repeating: "0", count: 40)
                for (uri, method) in [("/v1/chat/completions", HTTPRequest.Method.post), ("/v1/models", .get)] {
                    try await client.execute(
                        uri: uri, method: method, headers: .auth(wrong),
                        body: jsonBody(["model": "m", "messages": [["role": "user", "content": "hi"]]])
                    ) { response in
                        #expect(response.status == .unauthorized)
                        let error = Self.openAIError(response)
                        #expect(error["code"] as? String == "invalid_api_key")
                        #expect(error["type"] as? String == "invalid_request_error")
                    }
                }
                try await client.execute(uri: "/v1/models", method: .get) { #expect($0.status == .unauthorized) }
            }
        }
    }

    @Test func anUnknownPathOrMethodUnderV1IsAnOpenAIError() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await env.application().test(.router) { client in
                try await client.execute(uri: "/v1/chat/completions", method: .get, headers: .auth(key, json: false)) { response in
                    #expect(response.status == .methodNotAllowed)
                    #expect(response.headers[.allow] == "POST")
                    #expect(Self.openAIError(response)["type"] as? String == "invalid_request_error")
                    #expect((Self.openAIError(response)["message"] as? String)?.contains("POST") == true)
                }
                try await client.execute(uri: "/v1/embeddings", method: .post, headers: .auth(key), body: jsonBody(["input": "x"])) { response in
                    #expect(response.status == .notFound)
                    #expect(Self.openAIError(response)["type"] as? String == "invalid_request_error")
                    #expect(Self.openAIError(response)["code"] as? String == "not_found")
                }
                // The rest of the API keeps Switchboard's shape.
                try await client.execute(uri: "/api/v1/nothing-here", method: .get, headers: .auth(key, json: false)) { response in
                    #expect(response.status == .notFound)
                    #expect((response.json["error"] as? [String: Any])?["status"] as? Int == 404)
                }
            }
        }
    }

    @Test func aClientThatLeavesMidStreamBreaksNothing() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            try await env.withWorker(responder: EchoResponder(chunkDelay: .milliseconds(100))) {
                try await LiveServer.with(env.dependencies()) { port in
                    let body = try JSONSerialization.data(withJSONObject: [
                        "model": "m", "stream": true, "messages": [["role": "user", "content": "a long enough answer to leave in the middle of"]],
                    ])
                    let client = try await StreamingHTTPClient.send(
                        port: port, method: .POST, path: "/v1/chat/completions",
                        headers: [("Authorization", "Bearer \(key)"), ("Content-Type", "application/json")], body: Array(body))
                    var reader = SSEReader(client)
                    let head = try await reader.readHead()
                    #expect(head.status == 200)
                    let messageID = try #require(head.headers.first(name: "X-Switchboard-Message-Id").flatMap { Int64($0) })
                    _ = try await reader.next()
                    await client.close()

                    // The turn goes on without its reader, and its reply is stored.
                    var reply: SwitchboardCore.Message?
                    for _ in 0..<200 {
                        reply = try await env.stores.messages.message(ownerID: user.id, idempotencyKey: Turns.replyKey(for: messageID))
                        if reply?.status == .completed { break }
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    #expect(reply?.content == EchoResponder.reply(to: "a long enough answer to leave in the middle of"))

                    // And the server answers the next request as usual.
                    let next = try await StreamingHTTPClient.send(
                        port: port, method: .POST, path: "/v1/chat/completions",
                        headers: [("Authorization", "Bearer \(key)"), ("Content-Type", "application/json")],
                        body: Array(try JSONSerialization.data(withJSONObject: ["model": "m", "messages": [["role": "user", "content": "still there?"]]])))
                    var nextReader = SSEReader(next)
                    #expect(try await nextReader.readHead().status == 200)
                    let text = try await nextReader.remainingBody()
                    #expect(text.contains(EchoResponder.reply(to: "still there?")))
                }
            }
        }
    }
}
