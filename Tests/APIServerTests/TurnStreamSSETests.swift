@testable import APIServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOHTTP1
import Queue
import RedisClient
import Storage
import SwitchboardCore
import Testing
import TurnTestSupport
import Turns

@Suite("Turn streams over SSE")
struct TurnStreamSSETests {
    static func submit(port: Int, key: String, content: String) async throws -> (messageID: Int64, chatID: Int64) {
        let client = try await StreamingHTTPClient.send(
            port: port, method: .POST, path: "/api/v1/messages",
            headers: [("Authorization", "Bearer \(key)"), ("Content-Type", "application/json")],
            body: Array(#"{"content":"\#(content)"}"#.utf8))
        var reader = SSEReader(client)
        let head = try await reader.readHead()
        let body = try await reader.remainingBody()
        await client.close()
        #expect(head.status == 202, "\(body)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        return (Int64(try #require(json["messageId"] as? Int)), Int64(try #require(json["chatId"] as? Int)))
    }

    static func openEvents(port: Int, key: String, messageID: Int64, lastEventID: String? = nil) async throws -> StreamingHTTPClient {
        var headers = [("Authorization", "Bearer \(key)")]
        if let lastEventID { headers.append(("Last-Event-ID", lastEventID)) }
        return try await StreamingHTTPClient.send(port: port, method: .GET, path: "/api/v1/messages/\(messageID)/events", headers: headers)
    }

    static func replyText(_ frames: [SSEFrame]) -> String {
        frames.filter { $0.event == "chunk" }.compactMap { $0.json["text"] as? String }.joined()
    }

    @Test func aTurnRunByARealWorkerStreamsItsEventsToTheClient() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            try await env.withWorker {
                try await LiveServer.with(env.dependencies()) { port in
                    let (messageID, _) = try await Self.submit(port: port, key: key, content: "hello world")
                    let client = try await Self.openEvents(port: port, key: key, messageID: messageID)
                    var reader = SSEReader(client)
                    let head = try await reader.readHead()
                    #expect(head.status == 200)
                    #expect(head.headers["Content-Type"].first?.hasPrefix("text/event-stream") == true)
                    #expect(head.headers["Cache-Control"].first == "no-cache")
                    let frames = try await reader.events()
                    #expect(try await reader.next() == nil)  // the stream ends after `complete`
                    await client.close()

                    #expect(frames.first?.event == "status")
                    #expect(frames.first?.json["stage"] as? String == "started")
                    #expect(frames.last?.event == "complete")
                    #expect(frames.last?.json["messageId"] as? Int == Int(messageID))
                    #expect(Self.replyText(frames) == EchoResponder.reply(to: "hello world"))
                    #expect(frames.allSatisfy { $0.id != nil })
                    // Ids are the stream's entry ids, in order.
                    let entries = try await TurnStreamReader(redis: env.redis).all(messageID: messageID)
                    #expect(frames.map(\.id) == entries.map(\.id))

                    let stored = try #require(try await env.stores.messages.message(id: messageID, ownerID: user.id))
                    #expect(stored.status == .completed)
                    #expect(stored.topic == "echo")
                    // The reply is stored and shown with the message.
                    let detail = try await StreamingHTTPClient.send(
                        port: port, method: .GET, path: "/api/v1/messages/\(messageID)", headers: [("Authorization", "Bearer \(key)")])
                    var detailReader = SSEReader(detail)
                    let body = try await detailReader.remainingBody()
                    #expect(body.contains(EchoResponder.reply(to: "hello world")))
                    #expect(body.contains(#""status":"completed""#))
                    await detail.close()

                    // The delivery job records when the reply reached its channel, and the API shows it.
                    let replyKey = Turns.replyKey(for: messageID)
                    let deadline = ContinuousClock.now + .seconds(10)
                    var delivered = try await env.stores.messages.message(ownerID: user.id, idempotencyKey: replyKey)?.deliveredAt
                    while delivered == nil, ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(50))
                        delivered = try await env.stores.messages.message(ownerID: user.id, idempotencyKey: replyKey)?.deliveredAt
                    }
                    #expect(delivered != nil, "the reply was not delivered")
                    let afterDelivery = try await StreamingHTTPClient.send(
                        port: port, method: .GET, path: "/api/v1/messages/\(messageID)", headers: [("Authorization", "Bearer \(key)")])
                    var afterDeliveryReader = SSEReader(afterDelivery)
                    let reply = try #require(
                        (try JSONSerialization.jsonObject(with: Data(try await afterDeliveryReader.remainingBody().utf8)) as? [String: Any])?["reply"]
                            as? [String: Any])
                    #expect(reply["deliveredAt"] is String)
                    await afterDelivery.close()

                    // Reconnecting after the last event: 204, the browser stops.
                    let after = try await Self.openEvents(port: port, key: key, messageID: messageID, lastEventID: frames.last?.id)
                    var afterReader = SSEReader(after)
                    #expect(try await afterReader.readHead().status == 204)
                    await after.close()
                }
            }
        }
    }

    @Test func aClientDisconnectedMidTurnResumesWithLastEventIDAndMissesNothing() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            let content = "one two three four five six seven eight nine ten eleven twelve"
            try await env.withWorker(responder: EchoResponder(chunkDelay: .milliseconds(40))) {
                try await LiveServer.with(env.dependencies()) { port in
                    let (messageID, _) = try await Self.submit(port: port, key: key, content: content)
                    let first = try await Self.openEvents(port: port, key: key, messageID: messageID)
                    var reader = SSEReader(first)
                    var chunks = 0
                    let before = try await reader.events { frame in
                        if frame.event == "chunk" { chunks += 1 }
                        return chunks == 3
                    }
                    await first.close()  // the network drops mid-turn
                    let lastSeen = try #require(before.last?.id)

                    let second = try await Self.openEvents(port: port, key: key, messageID: messageID, lastEventID: lastSeen)
                    var resumed = SSEReader(second)
                    let after = try await resumed.events()
                    await second.close()

                    let all = before + after
                    let ids = all.compactMap(\.id)
                    #expect(Set(ids).count == ids.count)  // nothing twice
                    let entries = try await TurnStreamReader(redis: env.redis).all(messageID: messageID)
                    #expect(ids == entries.map(\.id))  // nothing skipped
                    #expect(after.last?.event == "complete")
                    #expect(Self.replyText(all) == EchoResponder.reply(to: content))
                }
            }
        }
    }

    @Test func aSecondAPINodeStreamsATurnSubmittedThroughTheFirst() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await env.withWorker(responder: EchoResponder(chunkDelay: .milliseconds(10))) {
                try await LiveServer.with(env.dependencies()) { firstPort in
                    try await LiveServer.with(env.dependencies()) { secondPort in
                        #expect(firstPort != secondPort)
                        let (messageID, _) = try await Self.submit(port: firstPort, key: key, content: "across nodes")
                        let client = try await Self.openEvents(port: secondPort, key: key, messageID: messageID)
                        var reader = SSEReader(client)
                        let frames = try await reader.events()
                        await client.close()
                        #expect(frames.last?.event == "complete")
                        #expect(Self.replyText(frames) == EchoResponder.reply(to: "across nodes"))
                    }
                }
            }
        }
    }

    @Test func submitAndStreamInOneRequest() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await env.withWorker {
                try await LiveServer.with(env.dependencies()) { port in
                    let headers = [("Authorization", "Bearer \(key)"), ("Content-Type", "application/json"), ("Idempotency-Key", "stream-1")]
                    let client = try await StreamingHTTPClient.send(
                        port: port, method: .POST, path: "/api/v1/messages/stream", headers: headers, body: Array(#"{"content":"in one go"}"#.utf8))
                    var reader = SSEReader(client)
                    let head = try await reader.readHead()
                    #expect(head.status == 200)
                    let messageID = try #require(head.headers["X-Message-ID"].first.flatMap { Int64($0) })
                    let frames = try await reader.events()
                    await client.close()
                    #expect(frames.last?.event == "complete")
                    #expect(Self.replyText(frames) == EchoResponder.reply(to: "in one go"))

                    // The same key and body again: the same turn is streamed, no second message.
                    let again = try await StreamingHTTPClient.send(
                        port: port, method: .POST, path: "/api/v1/messages/stream", headers: headers, body: Array(#"{"content":"in one go"}"#.utf8))
                    var againReader = SSEReader(again)
                    let againHead = try await againReader.readHead()
                    #expect(againHead.headers["X-Message-ID"].first == "\(messageID)")
                    let replayed = try await againReader.events()
                    await again.close()
                    #expect(replayed.map(\.id) == frames.map(\.id))
                    #expect(try await env.jobs.stats(for: .ai).depth == 0)

                    // The same key with another body: 422 before any stream.
                    let other = try await StreamingHTTPClient.send(
                        port: port, method: .POST, path: "/api/v1/messages/stream", headers: headers, body: Array(#"{"content":"else"}"#.utf8))
                    var otherReader = SSEReader(other)
                    #expect(try await otherReader.readHead().status == 422)
                    await other.close()
                }
            }
        }
    }

    @Test func anIdleStreamSendsHeartbeatsAndAStopEndsIt() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            // No worker: the turn stays queued until it is stopped.
            let settings = APISettings(heartbeatInterval: .milliseconds(100))
            try await LiveServer.with(env.dependencies(settings: settings)) { port in
                let (messageID, _) = try await Self.submit(port: port, key: key, content: "nobody answers")
                let client = try await Self.openEvents(port: port, key: key, messageID: messageID)
                var reader = SSEReader(client)
                var heartbeats = 0
                while heartbeats < 2, let frame = try await reader.next() {
                    if frame.comment == "heartbeat" { heartbeats += 1 }
                }
                #expect(heartbeats == 2)
                let stop = try await StreamingHTTPClient.send(
                    port: port, method: .POST, path: "/api/v1/messages/\(messageID)/stop", headers: [("Authorization", "Bearer \(key)")])
                var stopReader = SSEReader(stop)
                #expect(try await stopReader.readHead().status == 202)
                await stop.close()
                let rest = try await reader.events()
                #expect(rest.last?.event == "error")
                #expect(rest.last?.json["code"] as? String == "cancelled")
                await client.close()
            }
        }
    }

    /// No worker is left to end it: the api notices the message is gone on an idle beat.
    @Test(.timeLimit(.minutes(3))) func deletingTheChatEndsAnOpenStreamWithMessageDeleted() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            let settings = APISettings(heartbeatInterval: .milliseconds(100))
            try await LiveServer.with(env.dependencies(settings: settings)) { port in
                let (messageID, chatID) = try await Self.submit(port: port, key: key, content: "deleted before an answer")
                let client = try await Self.openEvents(port: port, key: key, messageID: messageID)
                var reader = SSEReader(client)
                #expect(try await reader.readHead().status == 200)
                let delete = try await StreamingHTTPClient.send(
                    port: port, method: .DELETE, path: "/api/v1/chats/\(chatID)", headers: [("Authorization", "Bearer \(key)")])
                var deleteReader = SSEReader(delete)
                #expect(try await deleteReader.readHead().status == 204)
                await delete.close()
                let frames = try await reader.events()
                #expect(frames.last?.event == "error")
                #expect(frames.last?.json["code"] as? String == "message_deleted")
                #expect(frames.last?.id == nil)  // made up from the database, not a stream entry
                #expect(try await reader.next() == nil)
                try await client.channel.closeFuture.get()  // the server ends the connection
            }
        }
    }

    @Test func eventsOfAnUnknownOrForeignMessageAre404BeforeAnyStream() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            let (_, otherKey) = try await env.makeUser()
            try await LiveServer.with(env.dependencies()) { port in
                let (messageID, _) = try await Self.submit(port: port, key: key, content: "mine")
                for (id, secret) in [(messageID, otherKey), (987_654, key)] {
                    let client = try await Self.openEvents(port: port, key: secret, messageID: id)
                    var reader = SSEReader(client)
                    let head = try await reader.readHead()
                    #expect(head.status == 404)
                    #expect(head.headers["Content-Type"].first?.hasPrefix("application/json") == true)
                    #expect(try await reader.remainingBody().contains("not_found"))
                    await client.close()
                }
                let bad = try await Self.openEvents(port: port, key: key, messageID: messageID, lastEventID: "garbage")
                var badReader = SSEReader(bad)
                #expect(try await badReader.readHead().status == 400)
                await bad.close()
            }
        }
    }

    @Test func aStopRequestCancelsARunningTurn() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            let content = Array(repeating: "word", count: 200).joined(separator: " ")
            try await env.withWorker(responder: EchoResponder(chunkDelay: .milliseconds(20))) {
                try await LiveServer.with(env.dependencies()) { port in
                    let (messageID, _) = try await Self.submit(port: port, key: key, content: content)
                    let client = try await Self.openEvents(port: port, key: key, messageID: messageID)
                    var reader = SSEReader(client)
                    _ = try await reader.events { $0.event == "chunk" }
                    let stop = try await StreamingHTTPClient.send(
                        port: port, method: .POST, path: "/api/v1/messages/\(messageID)/stop", headers: [("Authorization", "Bearer \(key)")])
                    var stopReader = SSEReader(stop)
                    #expect(try await stopReader.readHead().status == 202)
                    await stop.close()
                    let rest = try await reader.events()
                    await client.close()
                    #expect(rest.last?.event == "error")
                    #expect(rest.last?.json["code"] as? String == "cancelled")
                    #expect(Self.replyText(rest).count < EchoResponder.reply(to: content).count)
                    #expect(try await env.stores.messages.message(id: messageID, ownerID: user.id)?.status == .cancelled)
                }
            }
        }
    }
}
