import Foundation
import NIOCore
import NIOEmbedded
import SwitchboardCore
import Testing

@testable import Gateway

/// The hub keeps a channel's subscribers by the event loop their sockets are served on, and a
/// publication is fanned out by one task on each of those loops: nothing reaches a connection
/// before its loop runs, and then every subscriber has each publication once, in order.
@Suite struct HubTests {
    let token = GatewayTokens.mint(secret: "secret", user: "42", ttl: 3600)

    /// A client of `node` on `batcher`'s loop (nil: none), connected and subscribed to `channel`.
    func subscribed(_ node: Node, to channel: String, batcher: FlushBatcher?) async throws -> RecordingTransport {
        let transport = RecordingTransport(batcher: batcher)
        let client = node.makeClient(transport: transport)
        await client.send(#"{"id":1,"connect":{"token":"\#(token)"}}"#)
        await client.send(#"{"id":2,"subscribe":{"channel":"\#(channel)"}}"#)
        #expect(transport.replies.count == 2 && transport.closed == nil, "\(transport.messages)")
        return transport
    }

    /// The `n` of each publication push `transport` got, in order.
    func publications(_ transport: RecordingTransport) -> [Int64] {
        transport.replies.compactMap { $0["push"]?["pub"]?["data"]?["n"]?.int64Value }
    }

    @Test func subscribersAreKeptByLoopAndCountedAcrossThem() async throws {
        let node = makeNode()
        try await node.start()
        let (first, second) = (EmbeddedEventLoop(), EmbeddedEventLoop())
        let batchers = [FlushBatcher(eventLoop: first, ioUring: false), FlushBatcher(eventLoop: second, ioUring: false)]
        var clients: [Client] = []
        for index in 0..<5 {
            let client = node.makeClient(transport: RecordingTransport(batcher: index == 4 ? nil : batchers[index % 2]))
            #expect(node.hub.addSubscriber(client, to: "chat:a") == (index == 0))
            clients.append(client)
        }
        let loops = node.hub.subscribersByLoop(of: "chat:a")
        #expect(loops.count == 3)
        #expect(loops.first { $0.batcher === batchers[0] }?.clients.count == 2)
        #expect(loops.first { $0.batcher === batchers[1] }?.clients.count == 2)
        #expect(loops.first { $0.batcher == nil }?.clients.count == 1)
        #expect(node.hub.channels() == ["chat:a": 5])
        #expect(node.hub.subscriptionCount == 5)
        #expect(Set(node.hub.subscribers(of: "chat:a").map(\.id)) == Set(clients.map(\.id)))
        // A loop whose last subscriber left is no longer visited.
        #expect(node.hub.removeSubscriber(clients[1], from: "chat:a") == false)
        #expect(node.hub.removeSubscriber(clients[3], from: "chat:a") == false)
        #expect(node.hub.removeSubscriber(clients[3], from: "chat:a") == false)
        #expect(node.hub.subscribersByLoop(of: "chat:a").count == 2)
        #expect(node.hub.channels() == ["chat:a": 3])
        for client in [clients[0], clients[2]] { node.hub.removeSubscriber(client, from: "chat:a") }
        #expect(node.hub.removeSubscriber(clients[4], from: "chat:a") == true)
        #expect(node.hub.channels().isEmpty)
        // Taken for a fan-out, a loop's subscribers stay as they were while the hub changes.
        node.hub.addSubscriber(clients[0], to: "chat:b")
        let taken = node.hub.subscribersByLoop(of: "chat:b")
        node.hub.addSubscriber(clients[2], to: "chat:b")
        #expect(taken.first?.clients.count == 1)
        #expect(node.hub.subscribersByLoop(of: "chat:b").first?.clients.count == 2)
    }

    @Test func aPublicationReachesEachLoopsSubscribersWhenThatLoopRunsOnceAndInOrder() async throws {
        let node = makeNode()
        try await node.start()
        let (first, second) = (EmbeddedEventLoop(), EmbeddedEventLoop())
        let batchers = [FlushBatcher(eventLoop: first, ioUring: false), FlushBatcher(eventLoop: second, ioUring: false)]
        var onLoop: [[RecordingTransport]] = [[], []]
        for index in 0..<6 {
            onLoop[index % 2].append(try await subscribed(node, to: "chat:room", batcher: batchers[index % 2]))
        }
        let elsewhere = try await subscribed(node, to: "chat:room", batcher: nil)
        for n in 0..<3 {
            _ = try await node.publish(channel: "chat:room", data: #"{"n":\#(n)}"#, info: nil, options: node.rules.options(for: "chat:room")!)
        }
        // Delivered from the broker's thread to the connection without a loop; the others wait for theirs.
        #expect(publications(elsewhere) == [0, 1, 2])
        for transport in onLoop.joined() { #expect(publications(transport).isEmpty) }
        first.run()
        for transport in onLoop[0] { #expect(publications(transport) == [0, 1, 2]) }
        for transport in onLoop[1] { #expect(publications(transport).isEmpty) }
        second.run()
        for transport in onLoop[1] { #expect(publications(transport) == [0, 1, 2]) }
        // Nothing is delivered twice.
        first.run()
        second.run()
        for transport in onLoop.joined() { #expect(publications(transport) == [0, 1, 2]) }
        try await first.close()
        try await second.close()
    }
}
