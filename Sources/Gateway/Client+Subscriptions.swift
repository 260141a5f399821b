/// The client's subscriptions: `subscribe` (with recovery), server-side subscriptions, `unsubscribe`.
import Foundation
import Logging
import NIOCore
import SwitchboardCore
import Synchronization

extension Client {
    func subscribe(id: UInt32, _ request: SubscribeRequest) async throws {
        let channel = try require(request.channel)
        let body = try await prepareSubscription(channel: channel, request: request, serverSide: false)
        activate(channels: [channel], after: Reply.result(id: id, method: "subscribe") { $0.raw(String(body.dropFirst().dropLast())) })
    }

    /// Subscribes on behalf of the server API and tells the client with a subscribe push.
    func serverSubscribe(channel: String) async {
        guard state.withLock({ $0.status == .connected && $0.subscriptions[channel] == nil }) else { return }
        do {
            let body = try await prepareSubscription(channel: channel, request: SubscribeRequest(channel: channel), serverSide: true)
            activate(channels: [channel], after: Reply.push(channel: channel, kind: "subscribe") { $0.raw(body) })
        } catch {
            node.logger.debug("server subscribe failed", metadata: ["channel": "\(channel)", "error": "\(error)"])
        }
    }

    /// Checks the channel and token, registers the subscription (buffering live publications) as
    /// its `SubscriptionPlan` decides, joins the broker channel, reads the position or recovers
    /// history; answers the subscribe result as a JSON object. The subscription stays buffering
    /// until `activate` writes the reply.
    func prepareSubscription(channel: String, request: SubscribeRequest, serverSide: Bool) async throws -> String {
        let configuration = node.configuration
        guard node.rules.isValidName(channel) else { throw GatewayError.badRequest }
        guard let namespaceOptions = node.rules.options(for: channel) else { throw GatewayError.unknownChannel }
        let now = Clock.seconds()
        let (user, connInfo, capabilities) = state.withLock { ($0.user, $0.connInfo, $0.capabilities) }

        var token: SubscriptionToken?
        if let text = request.token, !text.isEmpty {
            token = try verifySubscriptionToken(text, channel: channel, now: now)
        } else if !serverSide, !node.rules.maySubscribeWithoutToken(channel: channel, user: user, options: namespaceOptions, capabilities: capabilities) {
            throw GatewayError.permissionDenied
        }
        let plan = SubscriptionPlan(namespaceOptions: namespaceOptions, override: token?.override, request: request, serverSide: serverSide)
        let options = plan.options
        let chanInfo = token?.info

        var subscription = Subscription()
        subscription.tracksPosition = plan.positioned
        subscription.expiresAt = token?.expiresAt
        subscription.joinLeave = plan.joinLeave
        subscription.presence = options.presence
        subscription.chanInfo = chanInfo
        subscription.serverSide = serverSide
        let registered = state.withLock { $0.addSubscription(channel, subscription, limit: configuration.clientChannelLimit) }
        if let registered { throw registered }

        do {
            // Subscribe in the broker before reading history so nothing published in between is lost.
            node.hub.addSubscriber(self, to: channel)
            try await node.brokerSubscriptions.acquire(channel)
        } catch {
            node.hub.removeSubscriber(self, from: channel)
            state.withLock { _ = $0.removeSubscription(channel) }
            throw error
        }

        var publications: [Publication] = []
        var position: StreamPosition?
        var recovered = false
        do {
            if plan.positioned {
                if let since = plan.recoverySince {
                    let result = try await node.broker.history(
                        channel: channel,
                        query: HistoryQuery(since: since, limit: options.historySize, metaTTL: configuration.historyMetaTTL))
                    position = result.position
                    (publications, recovered) = SubscriptionPlan.recovery(since: since, from: result)
                    if !recovered, plan.rejectsUnrecovered {
                        throw GatewayError.unrecoverablePosition
                    }
                } else {
                    position = try await node.broker.history(
                        channel: channel, query: HistoryQuery(limit: 0, metaTTL: configuration.historyMetaTTL)
                    ).position
                }
            }
            if options.presence {
                try await node.presence.add(
                    channel: channel, info: ClientInfo(user: user, client: id, connInfo: connInfo, chanInfo: chanInfo),
                    ttl: configuration.presenceTTL)
            }
        } catch {
            await abandon(channel: channel)
            throw error
        }
        if let position {
            state.withLock { state in
                state.subscriptions[channel]?.offset = SubscriptionPlan.offset(position: position, publications: publications)
                state.subscriptions[channel]?.epoch = position.epoch
            }
        }
        if options.joinLeave {
            try? await node.broker.publishJoin(
                channel: channel, info: ClientInfo(user: user, client: id, connInfo: connInfo, chanInfo: chanInfo))
        }
        return plan.result(
            position: position, publications: publications, recovered: recovered, expiresAt: token?.expiresAt, now: now, data: token?.data)
    }

    /// Writes `message` (the subscribe reply or push) and then, in order, the publications that
    /// arrived while the subscriptions were prepared; drops those the reply already holds.
    func activate(channels: [String], after message: String) {
        node.metrics.messagesOut.add(1, ordering: .relaxed)
        let ok = state.withLock { state -> Bool in
            guard state.status == .connected else { return true }
            guard write(OutboundMessage(message), movingPositionsIn: state) else { return false }
            for channel in channels {
                guard let buffered = state.subscriptions[channel]?.buffer else { continue }
                state.subscriptions[channel]!.buffer = []
                state.subscriptions[channel]!.buffering = false
                for publication in buffered {
                    if state.subscriptions[channel]!.tracksPosition, publication.offset > 0 {
                        if publication.offset <= state.subscriptions[channel]!.offset { continue }
                        state.subscriptions[channel]!.offset = publication.offset
                    }
                    guard write(publication.message, movingPositionsIn: state) else { return false }
                }
            }
            return true
        }
        if !ok { slow() }
    }

    /// Undoes a half-made subscription.
    func abandon(channel: String) async {
        let removed = state.withLock { $0.removeSubscription(channel) != nil }
        guard removed else { return }
        if node.hub.removeSubscriber(self, from: channel) {}
        await node.brokerSubscriptions.release(channel)
    }

    func unsubscribe(id: UInt32, channel: String) async throws {
        let removed = state.withLock { $0.removeSubscription(channel) }
        if let removed {
            await node.leave(self, user: user, channel: channel, subscription: removed)
        }
        reply(Reply.result(id: id, method: "unsubscribe") { _ in })
    }

    /// Ends a subscription from the server side with an unsubscribe push.
    func serverUnsubscribe(channel: String, code: Int, reason: String) async {
        let removed = state.withLock { $0.removeSubscription(channel) }
        guard let removed else { return }
        reply(Reply.push(channel: channel, kind: "unsubscribe") { writer in
            writer.beginObject()
            writer.field("code", code)
            writer.field("reason", reason)
            writer.endObject()
        })
        await node.leave(self, user: user, channel: channel, subscription: removed)
    }
}
