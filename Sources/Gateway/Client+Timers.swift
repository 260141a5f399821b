/// The client's once-a-second timers: pings, pong deadline, expiry, presence refresh.
import Foundation
import Logging
import NIOCore
import Synchronization

extension Client {
    func tick(now: Int64) async {
        let configuration = node.configuration
        enum Action { case none, disconnect(Disconnect), ping }
        var expiredSubscriptions: [String] = []
        var refreshPresence: [(String, ClientInfo)] = []
        let action = state.withLock { state -> Action in
            switch state.status {
            case .closed: return .none
            case .connecting:
                return now - createdAt > 10 ? .disconnect(.stale) : .none
            case .connected: break
            }
            if let expiresAt = state.expiresAt, now > expiresAt + Int64(configuration.expiryGrace) {
                return .disconnect(.expired)
            }
            if let deadline = state.pongDeadline, now > deadline { return .disconnect(.noPong) }
            for (channel, subscription) in state.subscriptions {
                if let expiresAt = subscription.expiresAt, now > expiresAt + Int64(configuration.expiryGrace) {
                    expiredSubscriptions.append(channel)
                }
            }
            if now - state.lastPresenceRefresh >= Int64(configuration.presenceTTL / 3) {
                state.lastPresenceRefresh = now
                for (channel, subscription) in state.subscriptions where subscription.presence && !subscription.buffering {
                    refreshPresence.append((channel, ClientInfo(user: state.user, client: id, connInfo: state.connInfo, chanInfo: subscription.chanInfo)))
                }
            }
            if now >= state.nextPingAt {
                state.nextPingAt = now + Int64(configuration.pingInterval)
                if state.pongDeadline == nil { state.pongDeadline = now + Int64(configuration.pongTimeout) }
                return .ping
            }
            return .none
        }
        switch action {
        case .none: break
        case .disconnect(let reason): disconnect(reason)
        case .ping: reply(Reply.ping)
        }
        for channel in expiredSubscriptions {
            await serverUnsubscribe(channel: channel, code: UnsubscribeCode.expired, reason: "subscription expired")
        }
        for (channel, info) in refreshPresence {
            try? await node.presence.add(channel: channel, info: info, ttl: configuration.presenceTTL)
        }
    }
}
