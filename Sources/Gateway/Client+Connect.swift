/// The client's `connect`, `refresh` and `sub_refresh` commands, and token verification.
import Foundation
import Logging
import NIOCore
import Synchronization

extension Client {
    func connect(id: UInt32, _ request: ConnectRequest) async {
        let configuration = node.configuration
        let now = Clock.seconds()
        var token: ConnectionToken?
        if let text = request.token, !text.isEmpty {
            do throws(JWT.Failure) {
                let claims = try JWT.verify(text, secrets: node.tokenSecrets, now: now)
                token = try ConnectionToken(claims: claims)
            } catch .expired {
                reply(Reply.error(id: id, .tokenExpired))
                return
            } catch {
                node.logger.debug("invalid connection token", metadata: ["client": "\(self.id)", "reason": "\(error)"])
                disconnect(.invalidToken)
                return
            }
        } else if !configuration.allowAnonymousConnectWithoutToken {
            disconnect(.badRequest)
            return
        }
        let user = token?.user ?? ""
        let pingInterval = Int64(configuration.pingInterval)
        let connected = state.withLock { state -> Bool in
            guard state.status == .connecting else { return false }
            state.status = .connected
            state.user = user
            state.connInfo = token?.info
            state.expiresAt = token?.expiresAt
            // The first ping comes at a random moment in the second half of the interval, so a
            // reconnect storm does not ping in lockstep.
            state.nextPingAt = now + max(1, Int64.random(in: (pingInterval / 2)...max(pingInterval / 2, pingInterval)))
            state.lastPresenceRefresh = now
            return true
        }
        guard connected else { return }
        node.hub.add(self, user: user)

        var serverSubscriptions: [(channel: String, body: String)] = []
        for channel in token?.channels ?? [] {
            do {
                let body = try await prepareSubscription(channel: channel, request: SubscribeRequest(channel: channel), serverSide: true)
                serverSubscriptions.append((channel, body))
            } catch {
                node.logger.debug("server-side subscription failed", metadata: ["channel": "\(channel)", "error": "\(error)"])
            }
        }
        let expiresAt = token?.expiresAt
        let message = Reply.result(id: id, method: "connect") { writer in
            writer.field("client", self.id)
            writer.field("version", Node.version)
            if let expiresAt {
                writer.field("expires", true)
                writer.field("ttl", max(0, expiresAt - now))
            }
            if !serverSubscriptions.isEmpty {
                writer.key("subs")
                writer.beginObject()
                for subscription in serverSubscriptions { writer.rawField(subscription.channel, subscription.body) }
                writer.endObject()
            }
            writer.field("ping", configuration.pingInterval)
            writer.field("pong", true)
            writer.field("node", node.id)
        }
        activate(channels: serverSubscriptions.map(\.channel), after: message)
    }

    func refresh(id: UInt32, token text: String) throws {
        let now = Clock.seconds()
        let token: ConnectionToken
        do throws(JWT.Failure) {
            token = try ConnectionToken(claims: try JWT.verify(text, secrets: node.tokenSecrets, now: now))
        } catch .expired {
            throw GatewayError.tokenExpired
        } catch {
            throw Disconnect.invalidToken
        }
        let sameUser = state.withLock { state in
            guard state.user == token.user else { return false }
            state.expiresAt = token.expiresAt
            if let info = token.info { state.connInfo = info }
            return true
        }
        guard sameUser else { throw Disconnect.invalidToken }
        reply(Reply.result(id: id, method: "refresh") { writer in
            writer.field("client", self.id)
            writer.field("version", Node.version)
            if let expiresAt = token.expiresAt {
                writer.field("expires", true)
                writer.field("ttl", max(0, expiresAt - now))
            }
        })
    }

    func subRefresh(id: UInt32, channel: String, token text: String) throws {
        let now = Clock.seconds()
        let token = try verifySubscriptionToken(text, channel: channel, now: now)
        let found = state.withLock { state in
            guard state.subscriptions[channel] != nil else { return false }
            state.subscriptions[channel]?.expiresAt = token.expiresAt
            return true
        }
        guard found else { throw GatewayError.permissionDenied }
        reply(Reply.result(id: id, method: "sub_refresh") { writer in
            if let expiresAt = token.expiresAt {
                writer.field("expires", true)
                writer.field("ttl", max(0, expiresAt - now))
            }
        })
    }

    func verifySubscriptionToken(_ text: String, channel: String, now: Int64) throws(GatewayError) -> SubscriptionToken {
        let token: SubscriptionToken
        do throws(JWT.Failure) {
            token = try SubscriptionToken(claims: try JWT.verify(text, secrets: node.tokenSecrets, now: now))
        } catch .expired {
            throw .tokenExpired
        } catch {
            throw .permissionDenied
        }
        let user = self.user
        guard token.channel == channel, token.user == user, token.client == nil || token.client == id else {
            throw .permissionDenied
        }
        return token
    }
}
