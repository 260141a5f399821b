/// The client's once-a-second timers: carries out what `ConnectionState.tick` decides (pings, disconnects,
/// expired subscriptions, presence refreshes).
import Foundation
import Logging
import NIOCore
import Synchronization

extension Client {
    func tick(now: Int64) async {
        let settings = node.timerSettings
        let actions = state.withLock { $0.tick(now: now, createdAt: createdAt, clientID: id, settings: settings) }
        switch actions.action {
        case .none: break
        case .disconnect(let reason): disconnect(reason)
        case .ping:
            reply(Reply.ping)
            // A unidirectional client does not answer `{}`; the WebSocket pong to this does.
            if transport.unidirectional { transport.ping() }
        }
        for channel in actions.expiredSubscriptions {
            await serverUnsubscribe(channel: channel, code: UnsubscribeCode.expired, reason: "subscription expired")
        }
        for (channel, info) in actions.presenceRefreshes {
            try? await node.presence.add(channel: channel, info: info, ttl: Int(settings.presenceTTL))
        }
    }
}
