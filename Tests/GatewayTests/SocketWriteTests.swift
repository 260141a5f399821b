import Foundation
import NIOCore
import SwitchboardCore
import TestSupport
import Testing

@testable import Gateway

/// The write path on real sockets: frames go to the socket directly until it is full, then wait
/// in NIO until it drains; a client that falls behind gets everything once and in order, or, past
/// the queue limit, is disconnected.
@Suite struct SocketWriteTests {
    static let padding = String(repeating: "x", count: 8000)

    static func configure(queueLimit: Int) -> (inout GatewayConfiguration) -> Void {
        { configuration in
            configuration.clientQueueMaxSize = queueLimit
            configuration.clientCommandRate = 0
            // No pings: the readers here do not answer them, and a busy machine may take a while.
            configuration.pingInterval = 600
            var open = ChannelOptions()
            open.allowSubscribeForClient = true
            open.allowPublishForClient = true
            configuration.namespaces = [NamespaceConfiguration(name: "chat", options: open)]
        }
    }

    /// A client connected and subscribed to `channel` (both replies read). `receiveBuffer`: a
    /// small one makes the server's socket to it fill after some 100 KB.
    /// A client of the unidirectional endpoint, subscribed to `channel` by its token (its connect push read).
    static func unidirectional(
        _ ports: GatewayServer.ListeningPorts, channel: String, receiveBuffer: Int? = nil
    ) async throws -> (WebSocketTestClient, AsyncStream<WebSocketTestClient.Event>.AsyncIterator) {
        let token = GatewayTokens.mint(secret: LiveGateway.tokenSecret, user: "reader", ttl: 600, channels: [channel])
        let target = "/connection/uni_websocket?cf_connect=%7B%22token%22%3A%22\(token)%22%7D"
        let client = try await WebSocketTestClient.connect(port: ports.port, target: target, receiveBuffer: receiveBuffer)
        var events = client.events.makeAsyncIterator()
        let connect = try #require(await events.next())
        guard case .text(let text) = connect, text.hasPrefix(#"{"connect""#) else {
            Issue.record("the connect was answered \(connect)")
            throw CancellationError()
        }
        return (client, events)
    }

    static func subscribed(
        _ ports: GatewayServer.ListeningPorts, channel: String, user: String = "reader", receiveBuffer: Int? = nil
    ) async throws -> (WebSocketTestClient, AsyncStream<WebSocketTestClient.Event>.AsyncIterator) {
        let client = try await WebSocketTestClient.connect(port: ports.port, receiveBuffer: receiveBuffer)
        let token = GatewayTokens.mint(secret: LiveGateway.tokenSecret, user: user, ttl: 600)
        try await client.send([#"{"id":1,"connect":{"token":"\#(token)"}}"#, #"{"id":2,"subscribe":{"channel":"\#(channel)"}}"#])
        var events = client.events.makeAsyncIterator()
        for id in 1...2 {
            let reply = try #require(await events.next())
            guard case .text(let text) = reply, text.contains(#""id":\#(id)"#), !text.contains("error") else {
                Issue.record("command \(id) was answered \(reply)")
                throw CancellationError()
            }
        }
        return (client, events)
    }

    /// A counter from the internal listener's `/metrics`.
    static func counter(_ name: String, _ ports: GatewayServer.ListeningPorts) async throws -> Int {
        let metrics = try await Curl.request("GET", "http://127.0.0.1:\(ports.internalPort)/metrics")
        let line = metrics.body.split(separator: "\n").first { $0.hasPrefix(name + " ") }
        return line.flatMap { Int($0.split(separator: " ")[1]) } ?? 0
    }

    static func socketBacklogs(_ ports: GatewayServer.ListeningPorts) async throws -> Int {
        try await counter("switchboard_gateway_socket_backlogs_total", ports)
    }

    /// Publishes `range` (about 8 KB each, `n` numbering them) from `publisher`, 50 to a write;
    /// stops early when the connection is closed.
    static func publish(_ range: Range<Int>, from publisher: WebSocketTestClient, channel: String) async {
        for batch in stride(from: range.lowerBound, to: range.upperBound, by: 50) {
            do {
                try await publisher.send((batch..<min(batch + 50, range.upperBound)).map {
                    #"{"id":\#($0 + 3),"publish":{"channel":"\#(channel)","data":{"n":\#($0),"pad":"\#(padding)"}}}"#
                })
            } catch {
                return
            }
        }
    }

    /// Waits (up to 20 s) until the counter `name` is above 0.
    static func waitFor(_ name: String, _ ports: GatewayServer.ListeningPorts) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while try await counter(name, ports) == 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// A reader of `chat:firehose` with a small receive buffer and a publisher. The reader stops
    /// reading while 1,000 publications (about 8 MB: more than the socket buffers hold, the
    /// server's growing to 4 MB at most here) are sent, until the counter `waitingFor` moves;
    /// then it reads again (the server may have closed the connection by then).
    static func readerLeftBehind(
        _ ports: GatewayServer.ListeningPorts, waitingFor counterName: String, unidirectional: Bool = false
    ) async throws -> (reader: WebSocketTestClient, events: AsyncStream<WebSocketTestClient.Event>.AsyncIterator, publisher: WebSocketTestClient) {
        let (reader, events) =
            unidirectional
            ? try await Self.unidirectional(ports, channel: "chat:firehose", receiveBuffer: 8192)
            : try await Self.subscribed(ports, channel: "chat:firehose", receiveBuffer: 8192)
        let (publisher, _) = try await Self.subscribed(ports, channel: "chat:other", user: "publisher")
        try await reader.channel.setOption(ChannelOptions.autoRead, value: false).get()
        await Self.publish(0..<1000, from: publisher, channel: "chat:firehose")
        try await Self.waitFor(counterName, ports)
        try? await reader.channel.setOption(ChannelOptions.autoRead, value: true).get()
        return (reader, events, publisher)
    }

    /// For a reader of either endpoint: a unidirectional one's messages are its own (no shared
    /// frame), written from the payload where it is until the socket leaves some of it. What the
    /// socket does not take waits in the gateway's own loop's queue, or in NIO's.
    @Test(arguments: [false, true], [GatewayConfiguration.SocketLayer.own, .nio])
    func aClientThatFallsBehindGetsEveryMessageOnceAndInOrder(unidirectional: Bool, socketLayer: GatewayConfiguration.SocketLayer) async throws {
        let configure = Self.configure(queueLimit: 64 << 20)
        try await LiveGateway.with({
            configure(&$0)
            $0.socketLayer = socketLayer
        }) { ports in
            // The reader's socket fills and the rest waits in the server.
            var (reader, events, publisher) = try await Self.readerLeftBehind(
                ports, waitingFor: "switchboard_gateway_socket_backlogs_total", unidirectional: unidirectional)
            #expect(try await Self.socketBacklogs(ports) > 0)
            // Then it reads while as much again is published: new publications meet the backlog
            // still draining, and must not overtake it.
            reader.channel.read()
            let more = Task { await Self.publish(1000..<2000, from: publisher, channel: "chat:firehose") }
            var next = 0
            while next < 2000, let event = await events.next() {
                guard case .text(let text) = event else {
                    Issue.record("the connection ended after \(next) publications: \(event)")
                    break
                }
                let message = JSONValue.parse(Array(text.utf8))
                guard let n = (unidirectional ? message : message?["push"])?["pub"]?["data"]?["n"]?.int64Value else {
                    Issue.record("not a publication: \(text.prefix(200))")
                    break
                }
                #expect(n == next)
                next = Int(n) + 1
            }
            #expect(next == 2000)
            await more.value
            await reader.close()
            await publisher.close()
        }
    }

    /// Several readers of one channel on both event loops: a publication alone in its tick goes
    /// to all of a loop's readers in one batch (through io_uring when `fanout_io_uring` is on),
    /// and what their full sockets leave of it waits in NIO, ahead of every later publication.
    /// Unidirectional readers get frames of their own (a header in front of the shared payload).
    @Test(arguments: [true, false], [false, true])
    func readersBehindTogetherGetEveryMessageOnceAndInOrder(ioUring: Bool, unidirectional: Bool) async throws {
        let configure = Self.configure(queueLimit: 64 << 20)
        try await LiveGateway.with({ configuration in
            configure(&configuration)
            configuration.fanoutIOUring = ioUring
        }) { ports in
            var readers: [(client: WebSocketTestClient, events: AsyncStream<WebSocketTestClient.Event>.AsyncIterator)] = []
            for index in 0..<6 {
                readers.append(
                    unidirectional
                        ? try await Self.unidirectional(ports, channel: "chat:firehose", receiveBuffer: 8192)
                        : try await Self.subscribed(ports, channel: "chat:firehose", user: "reader\(index)", receiveBuffer: 8192))
            }
            var (publisher, publisherEvents) = try await Self.subscribed(ports, channel: "chat:other", user: "publisher")
            /// The next publication each reader should get, and reads until `count`.
            var next = [Int](repeating: 0, count: readers.count)
            func readAll(upTo count: Int) async {
                for index in readers.indices {
                    while next[index] < count, let event = await readers[index].events.next() {
                        guard case .text(let text) = event, let message = JSONValue.parse(Array(text.utf8)),
                            let n = (unidirectional ? message : message["push"])?["pub"]?["data"]?["n"]?.int64Value
                        else {
                            Issue.record("reader \(index) got \(event) after \(next[index]) publications")
                            return
                        }
                        #expect(Int(n) == next[index])
                        next[index] = Int(n) + 1
                    }
                }
            }
            // One publication at a time while every reader reads: each goes out alone in its tick.
            for n in 0..<5 {
                await Self.publish(n..<(n + 1), from: publisher, channel: "chat:firehose")
                await readAll(upTo: n + 1)
            }
            let ringSends = try await Self.counter("switchboard_gateway_io_uring_sends_total", ports)
            #expect(ioUring ? ringSends > 0 : ringSends == 0)
            // Then the readers stop reading while far more is published than their sockets hold.
            for reader in readers { try await reader.client.channel.setOption(ChannelOptions.autoRead, value: false).get() }
            await Self.publish(5..<600, from: publisher, channel: "chat:firehose")
            try await Self.waitFor("switchboard_gateway_socket_backlogs_total", ports)
            for reader in readers { try await reader.client.channel.setOption(ChannelOptions.autoRead, value: true).get() }
            await readAll(upTo: 600)
            #expect(next == [Int](repeating: 600, count: readers.count))
            // The publisher's replies are its own messages (a frame header in front of the
            // reply), batched with the readers' frames of the same tick on its loop.
            var replies = 0
            while replies < 600, let event = await publisherEvents.next() {
                guard case .text(let text) = event else {
                    Issue.record("the publisher got \(event) after \(replies) replies")
                    break
                }
                for reply in text.split(separator: "\n") {
                    #expect(reply.hasPrefix(#"{"id":\#(replies + 3),"#))
                    replies += 1
                }
            }
            #expect(replies == 600)
            for reader in readers { await reader.client.close() }
            await publisher.close()
        }
    }

    @Test(arguments: [GatewayConfiguration.SocketLayer.own, .nio])
    func aClientFartherBehindThanTheQueueLimitIsDisconnected(socketLayer: GatewayConfiguration.SocketLayer) async throws {
        let configure = Self.configure(queueLimit: 256 << 10)
        try await LiveGateway.with({
            configure(&$0)
            $0.socketLayer = socketLayer
        }) { ports in
            var (client, events, publisher) = try await Self.readerLeftBehind(ports, waitingFor: "switchboard_gateway_slow_disconnects_total")
            client.channel.read()
            // It reads what reached it, then the connection ends without the rest.
            var publications = 0
            var ended = false
            while let event = await events.next() {
                switch event {
                case .text(let text): if text.contains(#""push""#) { publications += 1 }
                case .close, .end: ended = true
                case .ping: break
                }
                if ended { break }
            }
            #expect(ended)
            #expect(publications < 1000)
            #expect(try await Self.counter("switchboard_gateway_slow_disconnects_total", ports) == 1)
            await client.close()
            await publisher.close()
        }
    }
}
