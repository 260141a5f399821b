import Foundation
import Logging
import NIOCore
import SwitchboardCore
import Synchronization
import Testing

@testable import Gateway

/// The client's protocol state machine over the memory engine, driven through a `RecordingTransport`
/// (no sockets, no Redis).
@Suite struct ClientTests {
    let token = GatewayTokens.mint(secret: "secret", user: "42", ttl: 3600)

    /// Client ids are what Centrifugo hands out: random version-4 UUIDs in lower case.
    @Test func idsAreLowerCaseVersionFourUUIDsAndDoNotRepeat() {
        var seen = Set<String>()
        for _ in 0..<10_000 {
            let id = Client.makeID()
            #expect(id.count == 36)
            #expect(id == id.lowercased())
            let uuid = UUID(uuidString: id)
            #expect(uuid?.uuidString.lowercased() == id, "\(id) parses as a UUID")
            let bytes = Array(id.utf8)
            #expect(bytes[14] == UInt8(ascii: "4"), "version 4: \(id)")
            #expect("89ab".utf8.contains(bytes[19]), "RFC 4122 variant: \(id)")
            seen.insert(id)
        }
        #expect(seen.count == 10_000)
    }

    func connected(_ node: Node) async throws -> (Client, RecordingTransport) {
        try await node.start()
        let transport = RecordingTransport()
        let client = node.makeClient(transport: transport)
        await client.send(#"{"id":1,"connect":{"token":"\#(token)"}}"#)
        let reply = try #require(transport.replies.first)
        #expect(reply["connect"]?["client"]?.stringValue == client.id)
        #expect(reply["connect"]?["pong"] == .bool(true))
        return (client, transport)
    }

    @Test func theFirstCommandMustBeConnect() async throws {
        let node = makeNode()
        let transport = RecordingTransport()
        let client = node.makeClient(transport: transport)
        await client.send(#"{"id":1,"subscribe":{"channel":"chat:a"}}"#)
        #expect(transport.closed == .badRequest)
        #expect(transport.messages.isEmpty)
    }

    @Test func aTokenThatNeverExpiresIsRefusedWhenExpiryIsRequired() async throws {
        let forever = JWT.sign(claims: ["sub": .string("42")], secret: "secret")
        let strict = RecordingTransport()
        await makeNode { $0.requireTokenExpiry = true }.makeClient(transport: strict).send(#"{"id":1,"connect":{"token":"\#(forever)"}}"#)
        #expect(strict.closed == .invalidToken)
        let expiring = RecordingTransport()
        await makeNode { $0.requireTokenExpiry = true }.makeClient(transport: expiring).send(#"{"id":1,"connect":{"token":"\#(token)"}}"#)
        #expect(expiring.closed == nil)
        #expect(expiring.replies.first?["connect"] != nil)
        let lenient = RecordingTransport()
        await makeNode().makeClient(transport: lenient).send(#"{"id":1,"connect":{"token":"\#(forever)"}}"#)
        #expect(lenient.closed == nil)
    }

    @Test func connectWithoutTokenNeedsAnonymousAccess() async throws {
        let transport = RecordingTransport()
        await makeNode().makeClient(transport: transport).send(#"{"id":1,"connect":{}}"#)
        #expect(transport.closed == .badRequest)

        let open = RecordingTransport()
        await makeNode { $0.allowAnonymousConnectWithoutToken = true }.makeClient(transport: open).send(#"{"id":1,"connect":{}}"#)
        #expect(open.closed == nil)
        #expect(open.replies.first?["connect"] != nil)
    }

    @Test func anExpiredTokenAnswers109AndABadOneCloses3500() async throws {
        let expired = GatewayTokens.mint(secret: "secret", user: "1", ttl: 5, now: Date().addingTimeInterval(-60))
        let transport = RecordingTransport()
        await makeNode().makeClient(transport: transport).send(#"{"id":1,"connect":{"token":"\#(expired)"}}"#)
        #expect(transport.replies.first?["error"]?["code"] == .int(109))
        #expect(transport.closed == nil)

        let forged = GatewayTokens.mint(secret: "other", user: "1", ttl: 60)
        let second = RecordingTransport()
        await makeNode().makeClient(transport: second).send(#"{"id":1,"connect":{"token":"\#(forged)"}}"#)
        #expect(second.closed == .invalidToken)
    }

    @Test func subscribesPublishesAndReceivesInOrder() async throws {
        let node = makeNode()
        let (client, transport) = try await connected(node)
        await client.send(#"{"id":2,"subscribe":{"channel":"chat:a"}}"#)
        let subscribe = try #require(transport.replies.last?["subscribe"])
        #expect(subscribe["recoverable"] == .bool(true))
        #expect(subscribe["epoch"]?.stringValue?.isEmpty == false)

        await client.send(#"{"id":3,"publish":{"channel":"chat:a","data":{"text":"hi"}}}"#)
        await client.send(#"{"id":4,"publish":{"channel":"chat:a","data":[1,2]}}"#)
        let pushes = transport.replies.compactMap { $0["push"]?["pub"] }
        #expect(pushes.map { $0["data"] } == [.object(["text": .string("hi")]), .array([.int(1), .int(2)])])
        #expect(pushes.map { $0["offset"] } == [.int(1), .int(2)])
        #expect(pushes.first?["info"]?["user"] == .string("42"))
        #expect(transport.replies.contains { $0 == .object(["id": .int(3), "publish": .object([:])]) })
    }

    @Test func answersErrorsWithTheProtocolCodes() async throws {
        let node = makeNode()
        let (client, transport) = try await connected(node)
        await client.send(#"{"id":2,"subscribe":{"channel":"nowhere:a"}}"#)
        await client.send(#"{"id":3,"subscribe":{"channel":"locked:a"}}"#)
        await client.send(#"{"id":4,"subscribe":{"channel":"chat:a"}}"#)
        await client.send(#"{"id":5,"subscribe":{"channel":"chat:a"}}"#)
        await client.send(#"{"id":6,"rpc":{"method":"x"}}"#)
        await client.send(#"{"id":7,"publish":{"channel":"locked:a","data":{}}}"#)
        await client.send(#"{"id":8,"history":{"channel":"locked:a"}}"#)
        let codes = transport.replies.compactMap { reply -> Int64? in reply["error"]?["code"]?.int64Value }
        #expect(codes == [102, 103, 105, 104, 103, 103])
    }

    @Test func recoversPublicationsSinceAnOffset() async throws {
        let node = makeNode()
        let (client, transport) = try await connected(node)
        await client.send(#"{"id":2,"subscribe":{"channel":"chat:r"}}"#)
        let epoch = try #require(transport.replies.last?["subscribe"]?["epoch"]?.stringValue)
        for n in 1...4 { await client.send(#"{"id":\#(2 + n),"publish":{"channel":"chat:r","data":\#(n)}}"#) }

        let (second, secondTransport) = try await connected(node)
        await second.send(#"{"id":2,"subscribe":{"channel":"chat:r","recover":true,"epoch":"\#(epoch)","offset":2}}"#)
        let result = try #require(secondTransport.replies.last?["subscribe"])
        #expect(result["recovered"] == .bool(true))
        #expect(result["was_recovering"] == .bool(true))
        #expect(result["publications"]?.serialized == #"[{"data":3,"info":{"client":"\#(client.id)","user":"42"},"offset":3},{"data":4,"info":{"client":"\#(client.id)","user":"42"},"offset":4}]"#)
        #expect(result["offset"] == .int(4))

        let (third, thirdTransport) = try await connected(node)
        await third.send(#"{"id":2,"subscribe":{"channel":"chat:r","recover":true,"epoch":"other","offset":2}}"#)
        #expect(thirdTransport.replies.last?["subscribe"]?["recovered"] == nil)
        await third.send(#"{"id":3,"subscribe":{"channel":"chat:q","recover":true,"epoch":"other","offset":2,"flag":3}}"#)
        #expect(thirdTransport.replies.last?["error"]?["code"] == .int(112))
    }

    @Test func presenceListsSubscribersAndForgetsThemOnDisconnect() async throws {
        let node = makeNode()
        let (client, transport) = try await connected(node)
        await client.send(#"{"id":2,"subscribe":{"channel":"chat:p"}}"#)
        await client.send(#"{"id":3,"presence":{"channel":"chat:p"}}"#)
        #expect(transport.replies.last?["presence"]?["presence"]?[client.id]?["user"] == .string("42"))
        await client.send(#"{"id":4,"presence_stats":{"channel":"chat:p"}}"#)
        #expect(transport.replies.last?["presence_stats"] == .object(["num_clients": .int(1), "num_users": .int(1)]))
        await client.transportClosed()
        #expect(try await node.presence.presence(channel: "chat:p").isEmpty)
        #expect(node.hub.connectionCount == 0)
        #expect(node.hub.subscribers(of: "chat:p").isEmpty)
    }

    @Test func aClientWhoseQueueIsFullIsDisconnectedAsSlow() async throws {
        let node = makeNode()
        let (client, transport) = try await connected(node)
        await client.send(#"{"id":2,"subscribe":{"channel":"chat:s"}}"#)
        transport.refuseWrites()
        _ = try await node.publish(channel: "chat:s", data: "1", info: nil, options: node.rules.options(for: "chat:s")!)
        #expect(transport.closed == .slow)
        #expect(node.metrics.slowDisconnects.load(ordering: .relaxed) == 1)
    }

    @Test func pingsAndDisconnectsWithoutPong() async throws {
        let node = makeNode { $0.pingInterval = 2; $0.pongTimeout = 1 }
        let (client, transport) = try await connected(node)
        let start = Clock.seconds()
        await client.tick(now: start + 2)
        #expect(transport.messages.last == "{}")
        await client.send("{}")  // pong
        await client.tick(now: start + 4)
        await client.tick(now: start + 5)
        #expect(transport.closed == nil)
        await client.tick(now: start + 6)
        await client.tick(now: start + 8)
        #expect(transport.closed == .noPong)
    }

    @Test func anExpiredConnectionIsClosedAfterTheGrace() async throws {
        let node = makeNode { $0.expiryGrace = 5 }
        let (client, transport) = try await connected(node)
        await client.tick(now: Clock.seconds() + 3600 + 2)
        #expect(transport.closed == nil)
        await client.tick(now: Clock.seconds() + 3600 + 10)
        #expect(transport.closed == .expired)
    }

    @Test func refreshExtendsTheConnection() async throws {
        let node = makeNode()
        let (client, transport) = try await connected(node)
        let fresh = GatewayTokens.mint(secret: "secret", user: "42", ttl: 7200)
        await client.send(#"{"id":2,"refresh":{"token":"\#(fresh)"}}"#)
        #expect(transport.replies.last?["refresh"]?["expires"] == .bool(true))
        let stranger = GatewayTokens.mint(secret: "secret", user: "43", ttl: 7200)
        await client.send(#"{"id":3,"refresh":{"token":"\#(stranger)"}}"#)
        #expect(transport.closed == .invalidToken)
    }

    @Test func serverSideSubscriptionsFromTheTokenArriveInConnect() async throws {
        let node = makeNode()
        try await node.start()
        let transport = RecordingTransport()
        let client = node.makeClient(transport: transport)
        let token = GatewayTokens.mint(secret: "secret", user: "9", ttl: 3600, channels: ["locked:inbox"])
        await client.send(#"{"id":1,"connect":{"token":"\#(token)"}}"#)
        #expect(transport.replies.first?["connect"]?["subs"]?["locked:inbox"] != nil)
        _ = try await node.publish(channel: "locked:inbox", data: #""hello""#, info: nil, options: ChannelOptions())
        #expect(transport.replies.last?["push"]?["channel"] == .string("locked:inbox"))
    }

    @Test func newlineBatchedCommandsAreAllAnswered() async throws {
        let node = makeNode()
        let (client, transport) = try await connected(node)
        await client.send("{\"id\":2,\"subscribe\":{\"channel\":\"chat:b\"}}\n{\"id\":3,\"presence_stats\":{\"channel\":\"chat:b\"}}\n")
        #expect(transport.replies.compactMap { $0["id"]?.int64Value } == [1, 2, 3])
    }

    @Test func aClientFloodingCommandsIsDisconnected() async throws {
        let node = makeNode { $0.clientCommandRate = 10; $0.clientCommandBurst = 5 }
        let (client, transport) = try await connected(node)
        let pings = (2..<40).map { #"{"id":\#($0),"ping":{}}"# }.joined(separator: "\n")
        await client.send(pings)
        #expect(transport.closed == .tooManyRequests)
        #expect(transport.replies.count < 10)

        let unlimited = makeNode { $0.clientCommandRate = 0 }
        let (other, otherTransport) = try await connected(unlimited)
        await other.send(pings)
        #expect(otherTransport.closed == nil)
        #expect(otherTransport.replies.count == 39)
    }
}
