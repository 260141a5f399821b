/// Tests of the node-wide turn stream reader (TurnStreamHub) through the public SSE endpoint:
/// a fixed number of Redis connections for many open streams and for requests waiting on their
/// turn (the OpenAI endpoint, the generic webhook), several viewers of one turn, late
/// joiners with Last-Event-ID, a slow client cut off without loss, and a Redis restart. Events are
/// written straight into the turn streams, as the worker writes them.
@testable import APIServer
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Queue
import RedisClient
import Storage
import Synchronization
import TestSupport
import Testing
import TurnTestSupport
import Turns

@Suite("Turn stream hub")
struct TurnStreamHubTests {
    typealias SSE = TurnStreamSSETests

    /// Appends `count` chunks ("c0", "c1", ...) to the turn's stream.
    static func appendChunks(_ redis: RedisClient, _ messageID: Int64, from start: Int = 0, count: Int, size: Int = 0) async throws {
        let writer = TurnStreamWriter(redis: redis, messageID: messageID)
        let padding = String(repeating: "x", count: size)
        for i in start..<(start + count) { try await writer.append(.chunk("c\(i)\(padding)")) }
    }

    static func appendEnd(_ redis: RedisClient, _ messageID: Int64) async throws {
        try await TurnStreamWriter(redis: redis, messageID: messageID).append(.error(code: "cancelled", message: "stopped"))
    }

    /// Redis's own count of its clients and of the blocked ones.
    static func clientCounts(_ redis: RedisClient) async throws -> (connected: Int, blocked: Int) {
        let info = try #require(try await redis.send(RedisCommand("INFO", "clients")).string)
        func field(_ name: String) -> Int {
            info.split(whereSeparator: \.isNewline).first { $0.hasPrefix(name + ":") }
                .flatMap { Int($0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces)) } ?? -1
        }
        return (field("connected_clients"), field("blocked_clients"))
    }

    @Test(.timeLimit(.minutes(5))) func manyOpenStreamsUseAFixedNumberOfRedisConnections() async throws {
        let server = try await PrivateRedisServer()
        do {
            let redis = try TestRedis.client(url: server.url)
            try await TestEnvironment.with { env in
                let (_, key) = try await env.makeUser()
                let dependencies = APIDependencies(
                    redis: redis, stores: env.stores, jobs: JobQueue(client: redis, logger: TestEnvironment.logger),
                    settings: APISettings(heartbeatInterval: .seconds(30)), limits: .disabled)
                try await LiveServer.with(dependencies) { port in
                    let streams = 40
                    var messageIDs: [Int64] = []
                    for i in 0..<streams { messageIDs.append(try await SSE.submit(port: port, key: key, content: "m\(i)").messageID) }
                    var clients: [StreamingHTTPClient] = []
                    var readers: [SSEReader] = []
                    for id in messageIDs {
                        let client = try await SSE.openEvents(port: port, key: key, messageID: id)
                        var reader = SSEReader(client)
                        #expect(try await reader.readHead().status == 200)
                        clients.append(client)
                        readers.append(reader)
                    }
                    // Every stream is open and followed: an event written now reaches each of them.
                    for id in messageIDs { try await Self.appendChunks(redis, id, count: 1) }
                    for i in readers.indices {
                        let frames = try await readers[i].events { $0.event == "chunk" }
                        #expect(frames.last?.json["text"] as? String == "c0")
                    }
                    let counts = try await Self.clientCounts(redis)
                    // The multiplexed pool plus at most two readers, not one connection per stream.
                    #expect(counts.connected <= redis.configuration.poolSize + 2, "\(counts)")
                    #expect(counts.blocked <= 2, "\(counts)")

                    for id in messageIDs { try await Self.appendEnd(redis, id) }
                    for i in readers.indices {
                        #expect(try await readers[i].events().last?.event == "error")
                        await clients[i].close()
                    }
                }
            }
            await redis.close()
        } catch {
            await server.destroy()
            throw error
        }
        await server.destroy()
    }

    /// Requests that answer once their turn ends (`/v1/chat/completions`, the generic webhook's
    /// `wait`) follow it through the same readers as the SSE streams: no Redis connection each.
    @Test(.timeLimit(.minutes(5))) func requestsWaitingForTheirTurnShareTheHubsReaders() async throws {
        let server = try await PrivateRedisServer()
        do {
            let redis = try TestRedis.client(url: server.url)
            try await TestEnvironment.with { env in
                let (_, key) = try await env.makeUser()
                let dependencies = APIDependencies(
                    redis: redis, stores: env.stores, jobs: JobQueue(client: redis, logger: TestEnvironment.logger),
                    settings: APISettings(heartbeatInterval: .seconds(30)), limits: .disabled)
                try await LiveServer.with(dependencies) { port in
                    let waiting = 24
                    var readers: [SSEReader] = []
                    var clients: [StreamingHTTPClient] = []
                    for i in 0..<waiting {
                        let (path, body): (String, [String: Any]) = i.isMultiple(of: 2)
                            ? ("/v1/chat/completions", ["model": "m", "messages": [["role": "user", "content": "q\(i)"]]])
                            : ("/api/v1/webhooks/generic", ["message": "q\(i)", "wait": 60])
                        let client = try await StreamingHTTPClient.send(
                            port: port, method: .POST, path: path,
                            headers: [("Authorization", "Bearer \(key)"), ("Content-Type", "application/json")],
                            body: Array(try JSONSerialization.data(withJSONObject: body)))
                        clients.append(client)
                        readers.append(SSEReader(client))
                    }
                    var ids: [Int64] = []
                    for _ in 0..<400 where ids.count < waiting {
                        ids = try await TurnTestEnvironment.queuedTurnIDs(redis)
                        try await Task.sleep(for: .milliseconds(25))
                    }
                    #expect(ids.count == waiting)
                    try await Task.sleep(for: .milliseconds(300))  // each request is following its turn by now
                    let counts = try await Self.clientCounts(redis)
                    #expect(counts.connected <= redis.configuration.poolSize + 2, "\(counts)")
                    #expect(counts.blocked <= 2, "\(counts)")

                    for id in ids {
                        let writer = TurnStreamWriter(redis: redis, messageID: id)
                        try await writer.append(.chunk("answer \(id)"))
                        try await writer.append(.complete(TurnCompletion(messageId: id)))
                    }
                    for i in readers.indices {
                        let head = try await readers[i].readHead()
                        let body = try await readers[i].remainingBody()
                        #expect(head.status == 200, "\(body)")
                        #expect(body.contains("answer "), "\(body)")
                        await clients[i].close()
                    }
                }
            }
            await redis.close()
        } catch {
            await server.destroy()
            throw error
        }
        await server.destroy()
    }

    @Test(.timeLimit(.minutes(5))) func severalViewersOfOneTurnEachGetEveryEventInOrder() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await LiveServer.with(env.dependencies(settings: APISettings(heartbeatInterval: .seconds(30)))) { port in
                let (messageID, _) = try await SSE.submit(port: port, key: key, content: "watched three times")
                var clients: [StreamingHTTPClient] = []
                for _ in 0..<2 { clients.append(try await SSE.openEvents(port: port, key: key, messageID: messageID)) }
                try await Self.appendChunks(env.redis, messageID, count: 10)
                // A third viewer without Last-Event-ID comes in the middle: it gets the start too.
                clients.append(try await SSE.openEvents(port: port, key: key, messageID: messageID))
                try await Self.appendChunks(env.redis, messageID, from: 10, count: 10)
                try await Self.appendEnd(env.redis, messageID)

                let entries = try await TurnStreamReader(redis: env.redis).all(messageID: messageID)
                #expect(entries.count == 21)
                for client in clients {
                    var reader = SSEReader(client)
                    let frames = try await reader.events()
                    #expect(try await reader.next() == nil)
                    await client.close()
                    #expect(frames.map(\.id) == entries.map(\.id))
                    #expect(SSE.replyText(frames) == (0..<20).map { "c\($0)" }.joined())
                }
            }
        }
    }

    /// A turn quiet for longer than `hotIdle` is read by the cold reader, whose `XREAD` blocks for
    /// a minute here: the turn's next event must still end that read at once and reach the viewer.
    @Test(.timeLimit(.minutes(5))) func anIdleTurnsNextEventIsNotHeldForTheColdReadersBlock() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            let hub = TurnStreamHubSettings(hotIdle: .milliseconds(100), block: .milliseconds(200), coldBlock: .seconds(60))
            try await LiveServer.with(env.dependencies(settings: APISettings(heartbeatInterval: .seconds(30), streamHub: hub))) { port in
                let (messageID, _) = try await SSE.submit(port: port, key: key, content: "left open")
                let client = try await SSE.openEvents(port: port, key: key, messageID: messageID)
                var reader = SSEReader(client)
                try await Self.appendChunks(env.redis, messageID, count: 1)
                _ = try await reader.events(until: { SSE.replyText([$0]) == "c0" })
                // Long enough for the hot reader to hand the turn to the cold one.
                try await Task.sleep(for: .seconds(1))
                let started = ContinuousClock.now
                try await Self.appendChunks(env.redis, messageID, from: 1, count: 1)
                try await Self.appendEnd(env.redis, messageID)
                let frames = try await reader.events()
                await client.close()
                #expect(SSE.replyText(frames) == "c1")
                #expect(ContinuousClock.now - started < .seconds(30), "the event waited for the cold reader's block to run out")
            }
        }
    }

    @Test(.timeLimit(.minutes(5))) func aViewerJoiningLateWithLastEventIDGetsExactlyTheRest() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await LiveServer.with(env.dependencies(settings: APISettings(heartbeatInterval: .seconds(30)))) { port in
                let (messageID, _) = try await SSE.submit(port: port, key: key, content: "joined late")
                let first = try await SSE.openEvents(port: port, key: key, messageID: messageID)
                var firstReader = SSEReader(first)
                try await Self.appendChunks(env.redis, messageID, count: 10)
                // The first viewer has read all ten, so this node's read is past the late one's id.
                let seen = try await firstReader.events { $0.json["text"] as? String == "c9" }
                #expect(seen.count == 10)

                let late = try await SSE.openEvents(port: port, key: key, messageID: messageID, lastEventID: seen[4].id)
                try await Self.appendChunks(env.redis, messageID, from: 10, count: 5)
                try await Self.appendEnd(env.redis, messageID)
                var lateReader = SSEReader(late)
                let rest = try await lateReader.events()
                await late.close()
                let firstRest = try await firstReader.events()
                await first.close()

                let entries = try await TurnStreamReader(redis: env.redis).all(messageID: messageID)
                #expect(rest.map(\.id) == entries.dropFirst(5).map(\.id))
                #expect(SSE.replyText(rest) == (5..<15).map { "c\($0)" }.joined())
                #expect((seen + firstRest).map(\.id) == entries.map(\.id))
            }
        }
    }

    @Test(.timeLimit(.minutes(5))) func aSlowClientIsCutOffAndResumesWithoutLossWhileOthersKeepUp() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            let settings = APISettings(heartbeatInterval: .seconds(30), streamHub: TurnStreamHubSettings(viewerBufferLimit: 32))
            try await LiveServer.with(env.dependencies(settings: settings)) { port in
                let (messageID, _) = try await SSE.submit(port: port, key: key, content: "one slow viewer")
                let slow = try await PausedSSEClient.open(port: port, key: key, messageID: messageID)
                let fast = try await SSE.openEvents(port: port, key: key, messageID: messageID)
                var fastReader = SSEReader(fast)
                #expect(try await fastReader.readHead().status == 200)
                // About 4 MB, far more than the socket buffers of a client that reads nothing.
                for batch in 0..<20 {
                    try await Self.appendChunks(env.redis, messageID, from: batch * 8, count: 8, size: 24_000)
                    try await Task.sleep(for: .milliseconds(50))
                }
                try await Self.appendEnd(env.redis, messageID)

                // The fast viewer was not held up: everything, to the end.
                let fastFrames = try await fastReader.events()
                await fast.close()
                let entries = try await TurnStreamReader(redis: env.redis).all(messageID: messageID)
                #expect(entries.count == 161)
                #expect(fastFrames.map(\.id) == entries.map(\.id))

                // The slow one was cut off: what it got is a gapless start, without the end...
                let cut = try await slow.readToEnd()
                #expect(!cut.isEmpty)
                #expect(cut.last?.event != "error")
                #expect(cut.map(\.id) == entries.prefix(cut.count).map(\.id))
                // ...and its reconnection with Last-Event-ID brings exactly the rest.
                let again = try await SSE.openEvents(port: port, key: key, messageID: messageID, lastEventID: cut.last?.id)
                var againReader = SSEReader(again)
                let rest = try await againReader.events()
                await again.close()
                #expect((cut + rest).map(\.id) == entries.map(\.id))
                #expect(rest.last?.event == "error")
            }
        }
    }

    @Test(.timeLimit(.minutes(5))) func theReaderCarriesOnWhenRedisRestarts() async throws {
        let server = try await PrivateRedisServer()
        do {
            let redis = try TestRedis.client(url: server.url)
            try await TestEnvironment.with { env in
                let (_, key) = try await env.makeUser()
                let dependencies = APIDependencies(
                    redis: redis, stores: env.stores, jobs: JobQueue(client: redis, logger: TestEnvironment.logger),
                    settings: APISettings(heartbeatInterval: .milliseconds(200)), limits: .disabled)
                try await LiveServer.with(dependencies) { port in
                    let (messageID, _) = try await SSE.submit(port: port, key: key, content: "through a restart")
                    let client = try await SSE.openEvents(port: port, key: key, messageID: messageID)
                    var reader = SSEReader(client)
                    try await Self.appendChunks(redis, messageID, count: 3)
                    let before = try await reader.events { $0.json["text"] as? String == "c2" }
                    #expect(before.count == 3)

                    await server.kill()
                    try await Task.sleep(for: .milliseconds(500))
                    try await server.start()
                    // The writer's first command may meet the dropped connection: retry like a worker.
                    var written = false
                    for _ in 0..<50 where !written {
                        do {
                            try await Self.appendChunks(redis, messageID, from: 3, count: 3)
                            written = true
                        } catch {
                            try await Task.sleep(for: .milliseconds(100))
                        }
                    }
                    #expect(written)
                    try await Self.appendEnd(redis, messageID)
                    let after = try await reader.events()
                    await client.close()
                    #expect(SSE.replyText(before + after) == (0..<6).map { "c\($0)" }.joined())
                    #expect(after.last?.event == "error")
                    let entries = try await TurnStreamReader(redis: redis).all(messageID: messageID)
                    #expect(after.map(\.id) == entries.map(\.id))  // the restarted Redis has only what came after
                }
            }
            await redis.close()
        } catch {
            await server.destroy()
            throw error
        }
        await server.destroy()
    }
}

/// An SSE client that reads nothing until told to, with a tiny receive buffer: a viewer on a
/// slow network, whose unread bytes back up into the server.
final class PausedSSEClient: Sendable {
    let channel: any Channel
    let parts: AsyncStream<HTTPClientResponsePart>

    private init(channel: any Channel, parts: AsyncStream<HTTPClientResponsePart>) {
        self.channel = channel
        self.parts = parts
    }

    static func open(port: Int, key: String, messageID: Int64) async throws -> PausedSSEClient {
        let (stream, continuation) = AsyncStream<HTTPClientResponsePart>.makeStream()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.autoRead, value: false)
            .channelOption(.socketOption(.so_rcvbuf), value: 4096)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponsePartCollector(continuation))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/api/v1/messages/\(messageID)/events")
        head.headers.add(name: "Host", value: "127.0.0.1:\(port)")
        head.headers.add(name: "Authorization", value: "Bearer \(key)")
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
        return PausedSSEClient(channel: channel, parts: stream)
    }

    /// Starts reading and answers the event frames of the whole response.
    func readToEnd() async throws -> [SSEFrame] {
        try await channel.setOption(.autoRead, value: true).get()
        var body: [UInt8] = []
        for await part in parts {
            if case .body(let buffer) = part { body += buffer.readableBytesView }
        }
        try? await channel.close()
        var frames: [SSEFrame] = []
        for block in String(decoding: body, as: UTF8.self).components(separatedBy: "\n\n") {
            var frame = SSEFrame(id: nil, event: nil, data: "", comment: nil)
            for line in block.split(separator: "\n") {
                if line.hasPrefix("id: ") { frame.id = String(line.dropFirst(4)) }
                if line.hasPrefix("event: ") { frame.event = String(line.dropFirst(7)) }
                if line.hasPrefix("data: ") { frame.data = String(line.dropFirst(6)) }
            }
            if frame.event != nil { frames.append(frame) }
        }
        return frames
    }
}
