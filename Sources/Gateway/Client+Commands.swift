/// The client's `publish`, `presence`, `presence_stats` and `history` commands.
import Foundation
import Logging
import Realtime
import NIOCore
import SwitchboardCore
import Synchronization

extension Client {
    func publish(id: UInt32, _ request: PublishRequest) async throws {
        let channel = try require(request.channel)
        guard let data = request.data else { throw GatewayError.badRequest }
        guard node.rules.isValidName(channel) else { throw GatewayError.badRequest }
        guard let options = node.rules.options(for: channel) else { throw GatewayError.unknownChannel }
        let (user, connInfo, chanInfo, subscribed, capabilities) = state.withLock { state in
            (state.user, state.connInfo, state.subscriptions[channel]?.chanInfo, state.subscriptions[channel] != nil, state.capabilities)
        }
        guard options.allowPublishForClient || (options.allowPublishForSubscriber && subscribed)
            || ChannelRules.capabilities(capabilities, allow: "pub", on: channel)
        else {
            throw GatewayError.permissionDenied
        }
        let info = ClientInfo(user: user, client: self.id, connInfo: connInfo, chanInfo: chanInfo)
        await publishesBelow(Self.maxPublishesInFlight)
        state.withLock { $0.publishesInFlight += 1 }
        // Returns once queued; the reply is written when the broker answers.
        node.startPublish(channel: channel, data: data.serialized, info: info, options: options) { result in
            self.publishFinished(id: id, result)
        }
    }

    func checkReadAccess(channel: String, allowed: (ChannelOptions) -> Bool) throws(GatewayError) -> ChannelOptions {
        guard node.rules.isValidName(channel) else { throw .badRequest }
        guard let options = node.rules.options(for: channel) else { throw .unknownChannel }
        let (subscribed, capabilities) = state.withLock { ($0.subscriptions[channel].map { !$0.buffering } ?? false, $0.capabilities) }
        guard allowed(options) || ChannelRules.capabilities(capabilities, allow: "hst", on: channel), subscribed else { throw .permissionDenied }
        return options
    }

    func presence(id: UInt32, channel: String) async throws {
        let options = try checkReadAccess(channel: channel) { $0.allowPresenceForSubscriber }
        guard options.presence else { throw GatewayError.notAvailable }
        let entries = try await node.presence.presence(channel: channel)
        reply(Reply.result(id: id, method: "presence") { writer in
            writer.key("presence")
            writer.beginObject()
            for (client, info) in entries.sorted(by: { $0.key < $1.key }) {
                writer.key(client)
                info.write(to: &writer)
            }
            writer.endObject()
        })
    }

    func presenceStats(id: UInt32, channel: String) async throws {
        let options = try checkReadAccess(channel: channel) { $0.allowPresenceForSubscriber }
        guard options.presence else { throw GatewayError.notAvailable }
        let stats = try await node.presence.stats(channel: channel)
        reply(Reply.result(id: id, method: "presence_stats") { writer in
            writer.field("num_clients", stats.numClients)
            writer.field("num_users", stats.numUsers)
        })
    }

    func history(id: UInt32, _ request: HistoryRequest) async throws {
        let channel = try require(request.channel)
        let options = try checkReadAccess(channel: channel) { $0.allowHistoryForSubscriber }
        guard options.historyEnabled else { throw GatewayError.notAvailable }
        let result = try await node.history(channel: channel, limit: request.limit ?? 0, since: request.since, reverse: request.reverse ?? false)
        reply(Reply.result(id: id, method: "history") { Node.writeHistory(result, to: &$0) })
    }
}
