import Foundation
import NIOCore
import SwitchboardCore
import Testing

@testable import Gateway

/// The unidirectional endpoint's forms (the URL's connect request, pushes without their wrapper)
/// and a unidirectional client's connect, driven through a `RecordingTransport`.
@Suite struct UniWebSocketTests {
    func decoded(_ query: String) throws -> String? {
        try UniWebSocket.connectRequest(query: query[...]).map { String(buffer: $0) }
    }

    @Test func theConnectRequestIsReadFromTheQueryPercentDecoded() throws {
        #expect(try decoded("cf_connect=%7B%22token%22%3A%22a.b.c%22%7D") == #"{"token":"a.b.c"}"#)
        #expect(try decoded("x=1&cf_connect=%7B%7D&cf_connect=other") == "{}")
        #expect(try decoded("cf_connect={\"name\":\"a+b\"}") == #"{"name":"a b"}"#)
        #expect(try decoded("cf_connect") == "")
        #expect(try decoded("x=1&y=2") == nil)
        #expect(try decoded("&&cf_connect=%7B%7D&") == "{}")
        #expect(try decoded("cf_connect2=x&xcf_connect=y&cf_connec=z") == nil)
        #expect(try decoded("cf_connect=a=b") == "a=b")
        #expect(try decoded("") == nil)
        #expect(throws: UniWebSocket.ParameterError.badEscape) { try decoded("cf_connect=%7") }
        #expect(throws: UniWebSocket.ParameterError.badEscape) { try decoded("cf_connect=%zz") }
    }

    @Test func aPushLosesItsWrapperWithoutACopyAndOtherMessagesStayAsTheyAre() throws {
        let shared = try #require(Reply.encodedPublication(channel: "chat:a", offset: 7, json: Array(#"{"data":1}"#.utf8)[...]))
        let unwrapped = UniWebSocket.unwrap(shared)
        #expect(String(buffer: unwrapped.payload) == #"{"channel":"chat:a","pub":{"data":1,"offset":7}}"#)
        #expect(unwrapped.frame == nil)
        let joined = UniWebSocket.unwrap(OutboundMessage(Reply.push(channel: "chat:a", kind: "join") { writer in
            writer.beginObject()
            writer.field("info", "x")
            writer.endObject()
        }))
        #expect(String(buffer: joined.payload) == #"{"channel":"chat:a","join":{"info":"x"}}"#)
        for text in ["{}", #"{"connect":{"client":"c"}}"#, #"{"push":"#] {
            #expect(String(buffer: UniWebSocket.unwrap(OutboundMessage(text)).payload) == text)
        }
        #expect(UniWebSocket.disconnectPush(.invalidToken) == #"{"disconnect":{"code":3500,"reason":"invalid token"}}"#)
    }

    let token = GatewayTokens.mint(secret: "secret", user: "7", ttl: 3600, channels: ["chat:news"])

    func uniClient(_ node: Node) async throws -> (Client, RecordingTransport) {
        try await node.start()
        let transport = RecordingTransport(unidirectional: true)
        return (node.makeClient(transport: transport), transport)
    }

    @Test func aConnectRequestConnectsWithAPushAndTheTokensChannels() async throws {
        let node = makeNode()
        let (client, transport) = try await uniClient(node)
        await client.send(#"{"token":"\#(token)","name":"plain-js"}"#)
        let connect = try #require(transport.replies.first?["connect"])
        #expect(transport.replies.first?["id"] == nil)
        #expect(connect["client"]?.stringValue == client.id)
        #expect(connect["pong"] == nil, "a unidirectional client does not answer {}")
        #expect(connect["subs"]?["chat:news"] != nil)
        _ = try await node.publish(channel: "chat:news", data: #""hello""#, info: nil, options: node.rules.options(for: "chat:news")!)
        #expect(transport.replies.last?["push"]?["pub"]?["data"] == .string("hello"))
        // Whatever it sends later is read and ignored: no command runs, nothing is answered.
        let count = transport.messages.count
        await client.send(#"{"id":2,"subscribe":{"channel":"chat:other"}}"#)
        await client.send(#"{"token":"\#(token)"}"#)
        #expect(transport.messages.count == count)
        #expect(transport.closed == nil)
        #expect(client.subscribedChannels == ["chat:news"])
    }

    @Test func aClientThatFloodsWhatIsIgnoredIsStillDisconnected() async throws {
        let (client, transport) = try await uniClient(makeNode { $0.clientCommandRate = 10; $0.clientCommandBurst = 5 })
        await client.send(#"{"token":"\#(token)"}"#)
        for _ in 0..<20 { await client.send("{}") }
        #expect(transport.closed == .tooManyRequests)
    }

    @Test func aKnownPositionInSubsRecoversTheChannel() async throws {
        let node = makeNode()
        let options = try #require(node.rules.options(for: "chat:news"))
        try await node.start()
        var positions: [StreamPosition] = []
        for index in 1...3 { positions.append(try await node.publish(channel: "chat:news", data: "\(index)", info: nil, options: options)) }
        let (client, transport) = try await uniClient(node)
        let epoch = positions[0].epoch
        await client.send(#"{"token":"\#(token)","subs":{"chat:news":{"recover":true,"offset":1,"epoch":"\#(epoch)"}}}"#)
        let subscription = try #require(transport.replies.first?["connect"]?["subs"]?["chat:news"])
        #expect(subscription["recovered"] == .bool(true))
        guard case .array(let publications)? = subscription["publications"] else {
            Issue.record("no publications in \(subscription)")
            return
        }
        #expect(publications.compactMap { $0["data"]?.int64Value } == [2, 3])
    }

    @Test func whatABidirectionalClientWouldBeAnsweredIsADisconnect() async throws {
        let node = makeNode()
        let cases: [(String, Disconnect)] = [
            ("not json", .badRequest),
            (#"{"token":7}"#, .badRequest),
            (#"{"token":"nonsense"}"#, .invalidToken),
            (#"{"token":"\#(GatewayTokens.mint(secret: "secret", user: "7", ttl: 60, now: Date().addingTimeInterval(-3600)))"}"#, .expired),
            ("{}", .badRequest),  // anonymous connections are not allowed by default
        ]
        for (request, expected) in cases {
            let (client, transport) = try await uniClient(node)
            await client.send(request)
            #expect(transport.closed == expected, "\(request)")
            #expect(transport.messages.isEmpty, "\(request)")
        }
        let anonymous = makeNode { $0.allowAnonymousConnectWithoutToken = true }
        let (client, transport) = try await uniClient(anonymous)
        await client.send("{}")
        #expect(transport.replies.first?["connect"] != nil)
    }

    @Test func pingsGoOutAsBothAndOnlyAWebSocketPongKeepsTheConnection() async throws {
        let node = makeNode { $0.pingInterval = 10; $0.pongTimeout = 5 }
        let (client, transport) = try await uniClient(node)
        await client.send(#"{"token":"\#(token)"}"#)
        let start = Clock.seconds()
        await client.tick(now: start + 10)
        #expect(transport.messages.last == "{}")
        #expect(transport.pings == 1)
        client.pongReceived()
        await client.tick(now: start + 20)
        #expect(transport.pings == 2)
        // `{}` from a unidirectional client is not a pong.
        #expect(!client.handlePong(ByteBuffer(string: "{}")))
        await client.send("{}")
        await client.tick(now: start + 26)
        #expect(transport.closed == .noPong)
    }
}
