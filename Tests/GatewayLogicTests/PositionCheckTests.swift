import Foundation
import SwitchboardCore
import Synchronization
import Testing

@testable import Gateway

/// A publication that never reached the node (the broker's link was down when it was made) leaves
/// its subscribers behind with nothing to tell them; the position check does. Over the memory
/// engine, with the loss made by publishing while the node is not the broker's handler.
@Suite struct PositionCheckTests {
    let token = GatewayTokens.mint(secret: "secret", user: "42", ttl: 3600)

    func subscribed(_ node: Node, to channels: [String]) async throws -> (Client, RecordingTransport) {
        let transport = RecordingTransport()
        let client = node.makeClient(transport: transport)
        await client.send(#"{"id":1,"connect":{"token":"\#(token)"}}"#)
        for (index, channel) in channels.enumerated() {
            await client.send(#"{"id":\#(index + 2),"subscribe":{"channel":"\#(channel)"}}"#)
        }
        #expect(transport.replies.filter { $0["subscribe"] != nil }.count == channels.count)
        return (client, transport)
    }

    /// The unsubscribe pushes a client was sent, as channel → code.
    func unsubscribes(_ transport: RecordingTransport) -> [String: Int64] {
        var found: [String: Int64] = [:]
        for reply in transport.replies {
            if let push = reply["push"], let channel = push["channel"]?.stringValue, let code = push["unsubscribe"]?["code"]?.int64Value {
                found[channel] = code
            }
        }
        return found
    }

    /// Publishes on the broker while the node does not hear it: history has it, no subscriber got it.
    @discardableResult
    func loseAPublication(_ node: Node, on channel: String) async throws -> StreamPosition {
        await node.broker.stop()
        var options = PublishOptions()
        options.historySize = 10
        options.historyTTL = 60
        let position = try await node.broker.publish(channel: channel, publication: Publication(data: "1"), options: options)
        try await node.start()
        return position
    }

    @Test func aSubscriberBehindItsChannelIsUnsubscribedToRecoverAndOnlyThatOne() async throws {
        let node = makeNode()
        try await node.start()
        let (client, transport) = try await subscribed(node, to: ["chat:lost", "chat:fine"])
        await client.send(#"{"id":9,"publish":{"channel":"chat:fine","data":1}}"#)
        try await loseAPublication(node, on: "chat:lost")

        await node.checkPositions(settle: .milliseconds(10))
        #expect(unsubscribes(transport) == ["chat:lost": Int64(UnsubscribeCode.insufficient)])
        #expect(Set(client.subscribedChannels) == ["chat:fine"])
        #expect(node.metrics.positionCheckUnsubscribes.load(ordering: .relaxed) == 1)

        // Resubscribing with recovery from where it was brings the lost publication.
        let epochs = transport.replies.compactMap { $0["subscribe"]?["epoch"]?.stringValue }
        let epoch = try #require(epochs.first)
        await client.send(#"{"id":10,"subscribe":{"channel":"chat:lost","recover":true,"epoch":"\#(epoch)","offset":0}}"#)
        let recovered = try #require(transport.replies.last?["subscribe"])
        #expect(recovered["recovered"] == .bool(true))
        guard case .array(let publications) = recovered["publications"] else {
            Issue.record("no publications recovered: \(recovered)")
            return
        }
        #expect(publications.count == 1)

        // Caught up now: another check leaves it alone.
        await node.checkPositions(settle: .milliseconds(10))
        #expect(node.metrics.positionCheckUnsubscribes.load(ordering: .relaxed) == 1)
    }

    /// More channels than the check reads at once: each is read, and only those behind are told.
    @Test func everyChannelIsCheckedWhenThereAreMoreThanTheReadsInFlight() async throws {
        let node = makeNode()
        try await node.start()
        let channels = (0..<(Node.positionReadsInFlight * 2 + 5)).map { "chat:many\($0)" }
        let (_, transport) = try await subscribed(node, to: channels)
        let lost = channels.enumerated().filter { $0.offset % 3 == 0 }.map(\.element)
        for channel in lost { try await loseAPublication(node, on: channel) }
        await node.checkPositions(settle: .milliseconds(10))
        #expect(unsubscribes(transport) == Dictionary(uniqueKeysWithValues: lost.map { ($0, Int64(UnsubscribeCode.insufficient)) }))
    }

    /// A server-side subscription, or a unidirectional client's, cannot be made again by the
    /// client: it is disconnected to reconnect (3010) instead of unsubscribed.
    @Test func aSubscriptionTheClientCannotMakeAgainCostsItsConnection() async throws {
        let node = makeNode()
        try await node.start()
        let withChannels = GatewayTokens.mint(secret: "secret", user: "42", ttl: 3600, channels: ["chat:server"])
        let bidirectional = RecordingTransport()
        await node.makeClient(transport: bidirectional).send(#"{"id":1,"connect":{"token":"\#(withChannels)"}}"#)
        let unidirectional = RecordingTransport(unidirectional: true)
        await node.makeClient(transport: unidirectional).send(#"{"token":"\#(withChannels)"}"#)
        let (client, transport) = try await subscribed(node, to: ["chat:server"])
        try await loseAPublication(node, on: "chat:server")

        await node.checkPositions(settle: .milliseconds(10))
        #expect(bidirectional.closed == .insufficientState)
        #expect(unidirectional.closed == .insufficientState)
        #expect(unsubscribes(bidirectional).isEmpty)
        // A client's own subscription to the same channel is unsubscribed, as before.
        #expect(transport.closed == nil)
        #expect(unsubscribes(transport) == ["chat:server": Int64(UnsubscribeCode.insufficient)])
        _ = client
    }

    @Test func aPublicationStillOnItsWayWithinTheSettleTimeIsNotALoss() async throws {
        let node = makeNode()
        try await node.start()
        let (client, transport) = try await subscribed(node, to: ["chat:late"])
        // The stream moves on before the check reads it; the publication reaches the client while
        // the check waits.
        let position = try await loseAPublication(node, on: "chat:late")
        let check = Task { await node.checkPositions(settle: .seconds(2)) }
        try await Task.sleep(for: .milliseconds(200))
        let message = OutboundMessage(shared: Reply.publication(channel: "chat:late", Publication(offset: position.offset, data: "1")))
        client.deliver(channel: "chat:late", offset: position.offset, message: message)
        await check.value
        #expect(unsubscribes(transport).isEmpty)
        #expect(client.subscribedChannels == ["chat:late"])
    }

    @Test func theResubscribedEventAndThePeriodicDelayRunTheCheck() async throws {
        let node = makeNode { $0.channelPositionCheckDelay = 1 }
        try await node.start()
        let (_, transport) = try await subscribed(node, to: ["chat:a"])
        try await loseAPublication(node, on: "chat:a")
        let timers = Task { await node.runTimers() }
        defer { timers.cancel() }
        for _ in 0..<100 where unsubscribes(transport).isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        #expect(unsubscribes(transport) == ["chat:a": Int64(UnsubscribeCode.insufficient)])

        let other = makeNode { $0.channelPositionCheckDelay = 0 }
        try await other.start()
        let (_, otherTransport) = try await subscribed(other, to: ["chat:b"])
        try await loseAPublication(other, on: "chat:b")
        other.handleResubscribed()
        for _ in 0..<100 where unsubscribes(otherTransport).isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        #expect(unsubscribes(otherTransport) == ["chat:b": Int64(UnsubscribeCode.insufficient)])
    }

    @Test func standingComparesEpochThenOffset() {
        var state = ConnectionState()
        state.status = .connected
        var subscription = ConnectionState.Subscription()
        subscription.buffering = false
        subscription.tracksPosition = true
        subscription.offset = 5
        subscription.epoch = "e1"
        state.subscriptions["c"] = subscription
        #expect(state.standing(in: "c", against: StreamPosition(offset: 5, epoch: "e1")) == .current)
        #expect(state.standing(in: "c", against: StreamPosition(offset: 6, epoch: "e1")) == .behind)
        #expect(state.standing(in: "c", against: StreamPosition(offset: 1, epoch: "e2")) == .stale)
        #expect(state.standing(in: "other", against: StreamPosition(offset: 9, epoch: "e1")) == .current)
        state.subscriptions["c"]?.tracksPosition = false
        #expect(state.standing(in: "c", against: StreamPosition(offset: 9, epoch: "e1")) == .current)
        state.subscriptions["c"]?.tracksPosition = true
        state.subscriptions["c"]?.buffering = true
        #expect(state.standing(in: "c", against: StreamPosition(offset: 9, epoch: "e1")) == .current)
    }
}
