/// The client's `connect`, `refresh` and `sub_refresh` commands (and a unidirectional client's
/// connect request), and token verification.
import Foundation
import Logging
import NIOCore
import SwitchboardCore
import Synchronization

extension Client {
    /// A unidirectional client's message: its connect request while it is connecting, ignored after.
    /// Channels in `positions` that the request's `subs` does not name recover from there.
    func handleConnectRequest(_ bytes: ByteBuffer, recovering positions: [String: EventStreamID.Position] = [:]) async {
        guard state.withLock({ $0.status == .connecting }) else { return }
        var request: ConnectRequest
        do throws(MalformedCommand) {
            guard let json = JSONValue.parse(bytes.readableBytesView) else { throw MalformedCommand() }
            request = try ConnectRequest(json: json)
        } catch {
            node.logger.debug("undecodable connect request", metadata: ["client": "\(id)"])
            disconnect(.badRequest)
            return
        }
        for (channel, position) in positions where request.subs?[channel] == nil {
            var known = SubscribeRequest(channel: channel)
            known.recover = true
            known.offset = position.offset
            known.epoch = position.epoch
            request.subs = request.subs ?? [:]
            request.subs![channel] = known
        }
        await connect(id: 0, request)
    }

    /// Connects with `request` (command `id`; 0 for a unidirectional client, answered with a
    /// `connect` push, and disconnected where a bidirectional one would get an error reply).
    func connect(id: UInt32, _ request: ConnectRequest) async {
        if node.stopping.load(ordering: .relaxed) {
            disconnect(.shutdown)
            return
        }
        let configuration = node.configuration
        let now = Clock.seconds()
        var token: ConnectionToken?
        if let text = request.token, !text.isEmpty {
            do throws(JWT.Failure) {
                let claims = try JWT.verify(text, keys: node.tokenKeys, now: now)
                token = try ConnectionToken(claims: claims)
                if configuration.requireTokenExpiry, token?.expiresAt == nil {
                    node.logger.debug("connection token without exp refused", metadata: ["client": "\(self.id)"])
                    disconnect(.invalidToken)
                    return
                }
            } catch .expired {
                if transport.unidirectional {
                    disconnect(.expired)
                } else {
                    reply(Reply.error(id: id, .tokenExpired))
                }
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
        let firstPingAt = ConnectionState.firstPingAt(now: now, pingInterval: configuration.pingInterval)
        let connected = state.withLock {
            $0.connect(user: user, connInfo: token?.info, expiresAt: token?.expiresAt, now: now, firstPingAt: firstPingAt)
        }
        guard connected else { return }
        if let capabilities = token?.capabilities, !capabilities.isEmpty { state.withLock { $0.capabilities = capabilities } }
        node.hub.add(self, user: user)

        var serverSubscriptions: [(channel: String, body: String)] = []
        for channel in token?.channels ?? [] {
            // A position the client names in `subs` recovers the channel from there.
            var subscribe = SubscribeRequest(channel: channel)
            if let known = request.subs?[channel] {
                subscribe.recover = known.recover
                subscribe.epoch = known.epoch
                subscribe.offset = known.offset
            }
            do {
                let body = try await prepareSubscription(channel: channel, request: subscribe, serverSide: true)
                serverSubscriptions.append((channel, body))
            } catch {
                node.logger.debug("server-side subscription failed", metadata: ["channel": "\(channel)", "error": "\(error)"])
            }
        }
        let expiresAt = token?.expiresAt
        let unidirectional = transport.unidirectional
        let result = { (writer: inout JSONWriter) in
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
            writer.raw(unidirectional ? self.node.connectResultTail.unidirectional : self.node.connectResultTail.bidirectional)
        }
        let message =
            unidirectional
            ? UniWebSocket.push("connect", body: result) : Reply.result(id: id, method: "connect", capacity: 256, body: result)
        activate(channels: serverSubscriptions.map(\.channel), after: message)
    }

    func refresh(id: UInt32, token text: String) throws {
        let now = Clock.seconds()
        let token: ConnectionToken
        do throws(JWT.Failure) {
            token = try ConnectionToken(claims: try JWT.verify(text, keys: node.tokenKeys, now: now))
        } catch .expired {
            throw GatewayError.tokenExpired
        } catch {
            throw Disconnect.invalidToken
        }
        let sameUser = state.withLock { $0.refresh(user: token.user, expiresAt: token.expiresAt, connInfo: token.info, capabilities: token.capabilities) }
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
        let found = state.withLock { $0.refreshSubscription(channel, expiresAt: token.expiresAt) }
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
            token = try SubscriptionToken(claims: try JWT.verify(text, keys: node.tokenKeys, now: now))
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
