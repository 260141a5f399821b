/// Tests of turn streams served from the listener's channel handlers (TurnStreamConnections):
/// a connection whose first request is `GET /api/v1/messages/{id}/events` is answered through the
/// router and then streamed by a channel handler fed by the hub, with no task per open stream.
/// Real sockets, Redis and MariaDB; events are written straight into the turn streams, as the
/// worker writes them, except where a real worker runs the turn.
@testable import APIServer
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import RedisClient
import ServiceLifecycle
import Testing
import TurnTestSupport
import Turns

@Suite("Turn streams from channel handlers")
struct TurnStreamConnectionsTests {
    typealias SSE = TurnStreamSSETests
    typealias Hub = TurnStreamHubTests

    @Test func aTurnIsStreamedInOrderEndsOnCompleteAndTheConnectionCloses() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await env.withWorker(responder: EchoResponder(chunkDelay: .milliseconds(5))) {
                try await LiveServer.with(env.dependencies()) { port in
                    let (messageID, _) = try await SSE.submit(port: port, key: key, content: "one two three four five")
                    let client = try await SSE.openEvents(port: port, key: key, messageID: messageID)
                    var reader = SSEReader(client)
                    let head = try await reader.readHead()
                    #expect(head.status == 200)
                    #expect(head.headers["Content-Type"].first?.hasPrefix("text/event-stream") == true)
                    #expect(head.headers["Cache-Control"].first == "no-cache")
                    // The router's middlewares answered it: the request id is echoed.
                    #expect(head.headers["X-Request-ID"].first?.isEmpty == false)
                    #expect(head.headers["Connection"].first == "close")
                    let frames = try await reader.events()
                    #expect(try await reader.next() == nil)
                    // The server closes the connection after the stream.
                    try await client.channel.closeFuture.get()

                    let entries = try await TurnStreamReader(redis: env.redis).all(messageID: messageID)
                    #expect(frames.map(\.id) == entries.map(\.id))
                    #expect(frames.last?.event == "complete")
                    #expect(SSE.replyText(frames) == EchoResponder.reply(to: "one two three four five"))
                }
            }
        }
    }

    @Test func aClientResumesWithLastEventIDOrTheQueryAndMissesNothing() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await LiveServer.with(env.dependencies()) { port in
                let (messageID, _) = try await SSE.submit(port: port, key: key, content: "no worker: the test writes")
                let first = try await SSE.openEvents(port: port, key: key, messageID: messageID)
                var reader = SSEReader(first)
                #expect(try await reader.readHead().status == 200)
                try await Hub.appendChunks(env.redis, messageID, count: 3)
                let before = try await reader.events { $0.json["text"] as? String == "c2" }
                await first.close()
                #expect(SSE.replyText(before) == "c0c1c2")

                try await Hub.appendChunks(env.redis, messageID, from: 3, count: 2)
                let second = try await SSE.openEvents(port: port, key: key, messageID: messageID, lastEventID: before.last?.id)
                var resumed = SSEReader(second)
                try await Hub.appendEnd(env.redis, messageID)
                let after = try await resumed.events()
                await second.close()
                let entries = try await TurnStreamReader(redis: env.redis).all(messageID: messageID)
                #expect((before + after).map(\.id) == entries.map(\.id))
                #expect(after.last?.event == "error")

                // The web chat's reload sends the resume point as a query parameter.
                let third = try await StreamingHTTPClient.send(
                    port: port, method: .GET, path: "/api/v1/messages/\(messageID)/events?lastEventId=\(before[1].id ?? "")",
                    headers: [("Authorization", "Bearer \(key)")])
                var queried = SSEReader(third)
                let rest = try await queried.events()
                await third.close()
                #expect(rest.map(\.id) == entries.dropFirst(2).map(\.id))
            }
        }
    }

    @Test func anIdleStreamSendsHeartbeatsBetweenEvents() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            let settings = APISettings(heartbeatInterval: .milliseconds(100))
            try await LiveServer.with(env.dependencies(settings: settings)) { port in
                let (messageID, _) = try await SSE.submit(port: port, key: key, content: "slow turn")
                let client = try await SSE.openEvents(port: port, key: key, messageID: messageID)
                var reader = SSEReader(client)
                var heartbeats = 0
                while heartbeats < 2, let frame = try await reader.next() {
                    if frame.comment == "heartbeat" { heartbeats += 1 }
                }
                #expect(heartbeats == 2)
                try await Hub.appendChunks(env.redis, messageID, count: 1)
                let chunk = try await reader.events { $0.event == "chunk" }
                #expect(SSE.replyText(chunk) == "c0")
                // Idle again after the event: heartbeats again.
                var later = 0
                while later < 1, let frame = try await reader.next() {
                    if frame.comment == "heartbeat" { later += 1 }
                }
                #expect(later == 1)
                try await Hub.appendEnd(env.redis, messageID)
                #expect(try await reader.events().last?.event == "error")
                await client.close()
            }
        }
    }

    @Test func refusalsAreTheJSONErrorShapeAndNoStream() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            let (_, otherKey) = try await env.makeUser()
            try await LiveServer.with(env.dependencies()) { port in
                let (messageID, _) = try await SSE.submit(port: port, key: key, content: "mine")
                let cases: [(headers: [(String, String)], status: Int, code: String)] = [
                    ([], 401, "unauthorized"),
                    ([("Authorization", "Bearer sk_not_a_key")], 401, "unauthorized"),
                    ([("Authorization", "Bearer \(otherKey)")], 404, "not_found"),
                    ([("Authorization", "Bearer \(key)"), ("Last-Event-ID", "garbage")], 400, "invalid_field"),
                ]
                for (headers, status, code) in cases {
                    let client = try await StreamingHTTPClient.send(
                        port: port, method: .GET, path: "/api/v1/messages/\(messageID)/events", headers: headers)
                    var reader = SSEReader(client)
                    let head = try await reader.readHead()
                    #expect(head.status == status)
                    #expect(head.headers["Content-Type"].first?.hasPrefix("application/json") == true)
                    let body = try await reader.remainingBody()
                    let error = try #require((try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["error"] as? [String: Any])
                    #expect(error["status"] as? Int == status)
                    #expect(error["code"] as? String == code, "\(body)")
                    #expect((error["message"] as? String)?.isEmpty == false)
                    try await client.channel.closeFuture.get()
                }
            }
        }
    }

    /// An events GET after another request on a kept-alive connection goes through Hummingbird's
    /// route, and streams the same.
    @Test func aStreamAskedForOnAKeptAliveConnectionStillStreams() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await LiveServer.with(env.dependencies()) { port in
                let (messageID, _) = try await SSE.submit(port: port, key: key, content: "kept alive")
                var connection = try await KeptAliveConnection.open(port: port)
                let me = try await connection.request(path: "/api/v1/me", key: key)
                #expect(me.status == 200)
                try await Hub.appendChunks(env.redis, messageID, count: 2)
                try await Hub.appendEnd(env.redis, messageID)
                let events = try await connection.request(path: "/api/v1/messages/\(messageID)/events", key: key)
                #expect(events.status == 200)
                #expect(events.body.contains("retry: 2000"))
                #expect(events.body.contains("c0") && events.body.contains("c1"))
                #expect(events.body.contains("event: error"))
                await connection.close()
            }
        }
    }

    /// Graceful shutdown (what SIGTERM starts): open streams end with a clean end of their body,
    /// and the server stops.
    @Test(.timeLimit(.minutes(3))) func gracefulShutdownEndsOpenStreamsCleanly() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            let (ports, continuation) = AsyncStream<Int>.makeStream()
            let app = APIApplication.build(
                host: "127.0.0.1", port: 0, dependencies: env.dependencies(settings: APISettings(heartbeatInterval: .seconds(30))),
                logger: TestEnvironment.logger
            ) { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
            }
            let group = ServiceGroup(configuration: .init(services: [app], logger: TestEnvironment.logger))
            let running = Task { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())

            let (messageID, _) = try await SSE.submit(port: port, key: key, content: "open at shutdown")
            var clients: [StreamingHTTPClient] = []
            var readers: [SSEReader] = []
            for _ in 0..<3 {
                let client = try await SSE.openEvents(port: port, key: key, messageID: messageID)
                var reader = SSEReader(client)
                #expect(try await reader.readHead().status == 200)
                clients.append(client)
                readers.append(reader)
            }
            try await Hub.appendChunks(env.redis, messageID, count: 1)
            // Every stream is live (it has the chunk) before the shutdown starts; a fixed pause
            // was not always long enough with every suite starting at once.
            for index in readers.indices {
                var sawChunk = false
                while !sawChunk, let frame = try await readers[index].next() { sawChunk = frame.data.contains("c0") }
                #expect(sawChunk, "stream \(index) ended before its chunk")
            }

            await group.triggerGracefulShutdown()
            for index in readers.indices {
                while try await readers[index].next() != nil {}
                #expect(readers[index].sawEnd, "the body ended without its terminating chunk")
                try await clients[index].channel.closeFuture.get()
            }
            try await running.value
        }
    }
}

/// One HTTP/1.1 connection kept alive across requests (each answer read to its end).
struct KeptAliveConnection {
    struct Answer: Sendable {
        var status: Int
        var body: String
    }

    let channel: any Channel
    private var iterator: AsyncStream<HTTPClientResponsePart>.AsyncIterator

    static func open(port: Int) async throws -> KeptAliveConnection {
        let (stream, continuation) = AsyncStream<HTTPClientResponsePart>.makeStream()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(AllPartsCollector(continuation))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return KeptAliveConnection(channel: channel, iterator: stream.makeAsyncIterator())
    }

    mutating func request(path: String, key: String) async throws -> Answer {
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
        head.headers.add(name: "Host", value: "127.0.0.1")
        head.headers.add(name: "Authorization", value: "Bearer \(key)")
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
        var answer = Answer(status: 0, body: "")
        var body: [UInt8] = []
        while let part = await iterator.next() {
            switch part {
            case .head(let head): answer.status = Int(head.status.code)
            case .body(let buffer): body += buffer.readableBytesView
            case .end:
                answer.body = String(decoding: body, as: UTF8.self)
                return answer
            }
        }
        throw CancellationError()
    }

    func close() async {
        try? await channel.close().get()
    }
}

/// Every response part of a connection, across responses, until it closes.
final class AllPartsCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    let continuation: AsyncStream<HTTPClientResponsePart>.Continuation
    init(_ continuation: AsyncStream<HTTPClientResponsePart>.Continuation) { self.continuation = continuation }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { continuation.yield(unwrapInboundIn(data)) }
    func channelInactive(context: ChannelHandlerContext) { continuation.finish() }
}
