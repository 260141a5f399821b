import Foundation
import Logging
import NIOCore
import SwitchboardCore
import Testing

@testable import Gateway

/// More of the client over the memory engine (no sockets, no Redis): the connect-first rule
/// through the command loop, unsubscribing, server-side commands, positions, expiry, join/leave.
@Suite struct ClientCommandTests {
    let token = GatewayTokens.mint(secret: "secret", user: "42", ttl: 3600)

    func connected(_ node: Node, token: String? = nil) async throws -> (Client, RecordingTransport) {
        try await node.start()
        let transport = RecordingTransport()
        let client = node.makeClient(transport: transport)
        await client.send(#"{"id":1,"connect":{"token":"\#(token ?? self.token)"}}"#)
        #expect(transport.replies.first?["connect"]?["client"]?.stringValue == client.id)
        return (client, transport)
    }

    /// Waits (up to 2 s) for what a detached task of the client does.
    func waitFor(_ condition: () -> Bool) async {
        for _ in 0..<100 where !condition() { try? await Task.sleep(for: .milliseconds(20)) }
    }

    @Test func aSecondConnectOrACommandWithoutAnIDCloses3501() async throws {
        let (client, transport) = try await connected(makeNode())
        await client.send(#"{"send":{"data":1}}"#)
        #expect(transport.closed == nil)
        #expect(transport.messages.count == 1)
        await client.send(#"{"presence":{"channel":"chat:a"}}"#)
        #expect(transport.closed == .badRequest)

        let (again, againTransport) = try await connected(makeNode())
        await again.send(#"{"id":2,"connect":{"token":"\#(token)"}}"#)
        #expect(againTransport.closed == .badRequest)
        #expect(againTransport.messages.count == 1)
    }

    @Test(arguments: [#"{"id":1,"connect":"#, #"{"id":"1","connect":{}}"#, "[1]", #"{"id":1,"connect":{"token":5}}"#])
    func anUndecodableCommandCloses3501(_ text: String) async throws {
        let transport = RecordingTransport()
        await makeNode().makeClient(transport: transport).send(text)
        #expect(transport.closed == .badRequest)
        #expect(transport.messages.isEmpty)
    }

    /// A node that is stopping answers a late `connect` with 3001, so the client reconnects
    /// to another node (or to this one's successor) instead of subscribing on a dying one.
    @Test func aConnectToAStoppingNodeIsClosed3001() async throws {
        let node = makeNode()
        let (before, beforeTransport) = try await connected(node)
        await node.shutdown()
        await waitFor { beforeTransport.closed != nil }
        #expect(beforeTransport.closed == .shutdown)
        let transport = RecordingTransport()
        await node.makeClient(transport: transport).send(#"{"id":1,"connect":{"token":"\#(token)"}}"#)
        #expect(transport.closed == .shutdown)
        #expect(transport.replies.isEmpty)
        _ = before
    }

    @Test func aConnectionThatNeverConnectsIsClosedAsStale() async throws {
        let transport = RecordingTransport()
        let client = makeNode().makeClient(transport: transport)
        await client.tick(now: client.createdAt + 10)
        #expect(transport.closed == nil)
        await client.tick(now: client.createdAt + 11)
        #expect(transport.closed == .stale)
    }

    @Test func pingAndRPCAreAnswered() async throws {
        let (client, transport) = try await connected(makeNode { $0.rpc = true })
        await client.send(#"{"id":2,"ping":{}}"#)
        await client.send(#"{"id":3,"rpc":{"method":"m","data":{"x":[1]}}}"#)
        #expect(Array(transport.messages.suffix(2)) == [#"{"id":2,"ping":{}}"#, #"{"id":3,"rpc":{"data":{"x":[1]}}}"#])
    }

    @Test func unsubscribeAnswersAndStopsDelivery() async throws {
        let node = makeNode()
        let (client, transport) = try await connected(node)
        await client.send(#"{"id":2,"subscribe":{"channel":"chat:u"}}"#)
        await client.send(#"{"id":3,"unsubscribe":{"channel":"chat:u"}}"#)
        #expect(transport.messages.last == #"{"id":3,"unsubscribe":{}}"#)
        #expect(node.hub.subscribers(of: "chat:u").isEmpty)
        #expect(client.subscribedChannels.isEmpty)
        _ = try await node.publish(channel: "chat:u", data: "1", info: nil, options: node.rules.options(for: "chat:u")!)
        #expect(transport.replies.allSatisfy { $0["push"] == nil })
        // Unsubscribing from a channel one is not subscribed to is answered all the same.
        await client.send(#"{"id":4,"unsubscribe":{"channel":"chat:never"}}"#)
        #expect(transport.messages.last == #"{"id":4,"unsubscribe":{}}"#)
    }

    @Test func theChannelLimitAnswers106() async throws {
        let (client, transport) = try await connected(makeNode { $0.clientChannelLimit = 1 })
        await client.send(#"{"id":2,"subscribe":{"channel":"chat:a"}}"#)
        await client.send(#"{"id":3,"subscribe":{"channel":"chat:b"}}"#)
        #expect(transport.replies.last?["error"]?["code"] == .int(106))
        #expect(client.subscribedChannels == ["chat:a"])
    }

    @Test func subRefreshNeedsTheSubscription() async throws {
        let (client, transport) = try await connected(makeNode())
        let subscription = GatewayTokens.mint(secret: "secret", user: "42", channel: "locked:x", ttl: 60)
        await client.send(#"{"id":2,"sub_refresh":{"channel":"locked:x","token":"\#(subscription)"}}"#)
        #expect(transport.replies.last?["error"]?["code"] == .int(103))
        await client.send(#"{"id":3,"subscribe":{"channel":"locked:x","token":"\#(subscription)"}}"#)
        #expect(transport.replies.last?["subscribe"] != nil)
        let longer = GatewayTokens.mint(secret: "secret", user: "42", channel: "locked:x", ttl: 600)
        await client.send(#"{"id":4,"sub_refresh":{"channel":"locked:x","token":"\#(longer)"}}"#)
        #expect(transport.replies.last?["sub_refresh"]?["expires"] == .bool(true))
        let stranger = GatewayTokens.mint(secret: "secret", user: "43", channel: "locked:x", ttl: 600)
        await client.send(#"{"id":5,"sub_refresh":{"channel":"locked:x","token":"\#(stranger)"}}"#)
        #expect(transport.replies.last?["error"]?["code"] == .int(103))
    }

    @Test func aSubscriptionPastItsTokensExpiryIsUnsubscribedWith2501() async throws {
        let (client, transport) = try await connected(makeNode { $0.expiryGrace = 5 })
        let subscription = GatewayTokens.mint(secret: "secret", user: "42", channel: "locked:x", ttl: 60)
        await client.send(#"{"id":2,"subscribe":{"channel":"locked:x","token":"\#(subscription)"}}"#)
        await client.tick(now: Clock.seconds() + 60 + 2)
        #expect(client.subscribedChannels == ["locked:x"])
        await client.send("{}")  // the pong to the ping that tick sent
        await client.tick(now: Clock.seconds() + 60 + 10)
        let push = try #require(transport.replies.last?["push"])
        #expect(push["channel"] == .string("locked:x"))
        #expect(push["unsubscribe"]?["code"] == .int(2501))
        #expect(client.subscribedChannels.isEmpty)
        #expect(transport.closed == nil)
    }

    @Test func positionedDeliveryDropsDuplicatesAndResubscribesOnAGap() async throws {
        let (client, transport) = try await connected(makeNode())
        await client.send(#"{"id":2,"subscribe":{"channel":"chat:g"}}"#)
        client.deliver(channel: "chat:g", offset: 1, message: OutboundMessage(#"{"push":{"channel":"chat:g","pub":{"data":1,"offset":1}}}"#))
        client.deliver(channel: "chat:g", offset: 1, message: OutboundMessage(#"{"push":{"channel":"chat:g","pub":{"data":1,"offset":1}}}"#))
        #expect(transport.replies.compactMap { $0["push"]?["pub"] }.count == 1)
        client.deliver(channel: "chat:g", offset: 3, message: OutboundMessage(#"{"push":{"channel":"chat:g","pub":{"data":3,"offset":3}}}"#))
        await waitFor { transport.replies.last?["push"]?["unsubscribe"] != nil }
        #expect(transport.replies.last?["push"]?["unsubscribe"]?["code"] == .int(2500))
        #expect(transport.replies.compactMap { $0["push"]?["pub"] }.count == 1)
        #expect(client.subscribedChannels.isEmpty)
    }

    @Test func theServerAPISubscribesUnsubscribesAndDisconnectsUsers() async throws {
        let node = makeNode()
        let (client, transport) = try await connected(node)
        let api = HTTPAPI(node: node)
        func params(_ text: String) throws -> JSONValue { try #require(JSONValue.parse(Array(text.utf8))) }

        _ = try await api.call(method: "subscribe", params: params(#"{"user":"42","channel":"chat:s"}"#))
        await waitFor { client.subscribedChannels == ["chat:s"] && transport.replies.last?["push"]?["subscribe"] != nil }
        #expect(transport.replies.last?["push"]?["channel"] == .string("chat:s"))
        #expect(transport.replies.last?["push"]?["subscribe"]?["recoverable"] == .bool(true))

        _ = try await api.call(method: "unsubscribe", params: params(#"{"user":"42","channel":"chat:s"}"#))
        await waitFor { client.subscribedChannels.isEmpty }
        #expect(transport.replies.last?["push"]?["unsubscribe"]?["code"] == .int(2000))

        _ = try await api.call(method: "disconnect", params: params(#"{"user":"someone else"}"#))
        #expect(transport.closed == nil)
        _ = try await api.call(method: "disconnect", params: params(#"{"user":"42","disconnect":{"code":4001,"reason":"go"}}"#))
        #expect(transport.closed == Disconnect(code: 4001, reason: "go"))
        #expect(client.isClosed)
    }

    @Test func joinAndLeaveReachSubscribersThatAskForThem() async throws {
        let node = makeNode { $0.namespaces[0].options.joinLeave = true }
        let (watcher, watcherTransport) = try await connected(node)
        await watcher.send(#"{"id":2,"subscribe":{"channel":"chat:j","join_leave":true}}"#)
        let (quiet, quietTransport) = try await connected(node)
        await quiet.send(#"{"id":2,"subscribe":{"channel":"chat:j"}}"#)
        let (visitor, _) = try await connected(node)
        await visitor.send(#"{"id":2,"subscribe":{"channel":"chat:j"}}"#)
        #expect(watcherTransport.replies.compactMap { $0["push"]?["join"]?["info"]?["client"]?.stringValue } == [quiet.id, visitor.id])
        await visitor.send(#"{"id":3,"unsubscribe":{"channel":"chat:j"}}"#)
        #expect(watcherTransport.replies.last?["push"]?["leave"]?["info"]?["client"] == .string(visitor.id))
        #expect(quietTransport.replies.allSatisfy { $0["push"] == nil })
    }
}
