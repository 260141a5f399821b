import Foundation
import Logging
import NIOCore
import Synchronization

/// The protocol state machine of one connection: decodes commands, enforces the connect-first
/// rule, permissions and limits, tracks subscriptions (with recovery buffering) and answers.
final class Client: Sendable {
    enum Status: Sendable { case connecting, connected, closed }

    struct Subscription: Sendable {
        /// Live publications are buffered while the subscribe reply (and recovered history) is prepared.
        var buffering = true
        var buffer: [(offset: UInt64, message: OutboundMessage)] = []
        /// Offsets are tracked (duplicates dropped, gaps detected) for positioned or recoverable subscriptions.
        var tracksPosition = false
        var offset: UInt64 = 0
        var epoch = ""
        var expiresAt: Int64?
        var joinLeave = false
        var presence = false
        var chanInfo: String?
        var serverSide = false
    }

    struct State: Sendable {
        var status = Status.connecting
        var user = ""
        var connInfo: String?
        var expiresAt: Int64?
        var subscriptions: [String: Subscription] = [:]
        var nextPingAt: Int64 = 0
        var pongDeadline: Int64?
        var lastPresenceRefresh: Int64 = 0
        var commandAllowance = CommandAllowance()
        /// Publishes sent to the broker whose replies are still to come.
        var publishesInFlight = 0
        /// The command loop waiting until at most `limit` publishes are in flight.
        var publishWaiter: (limit: Int, continuation: CheckedContinuation<Void, Never>)?
    }

    /// Publishes one connection may have in flight before its next command waits.
    static let maxPublishesInFlight = 64

    let id: String
    let node: Node
    let transport: any Transport
    let createdAt: Int64
    let state = Mutex(State())

    init(node: Node, transport: any Transport) {
        self.id = UUID().uuidString.lowercased()
        self.node = node
        self.transport = transport
        self.createdAt = Clock.seconds()
    }

    var user: String { state.withLock { $0.user } }
    var isClosed: Bool { state.withLock { $0.status == .closed } }
    var subscribedChannels: [String] { state.withLock { Array($0.subscriptions.keys) } }

    // MARK: inbound

    /// Takes a pong (`{}`, the most frequent message) without a trip through the command queue;
    /// false for anything else.
    func handlePong(_ bytes: ByteBuffer) -> Bool {
        guard bytes.readableBytes == 2, bytes.getInteger(at: bytes.readerIndex, as: UInt16.self) == 0x7B7D else { return false }
        node.metrics.messagesIn.add(1, ordering: .relaxed)
        state.withLock { $0.pongDeadline = nil }
        return true
    }

    /// Handles one WebSocket message: one or more newline-separated commands.
    func handle(_ bytes: ByteBuffer) async {
        node.metrics.messagesIn.add(1, ordering: .relaxed)
        state.withLock { $0.pongDeadline = nil }
        let view = bytes.readableBytesView
        var start = view.startIndex
        while start < view.endIndex, !isClosed {
            let end = view[start...].firstIndex(of: UInt8(ascii: "\n")) ?? view.endIndex
            let line = view[start..<end]
            start = end < view.endIndex ? view.index(after: end) : end
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }) { continue }
            guard takeCommandAllowance() else {
                node.logger.debug("client exceeded the command rate", metadata: ["client": "\(id)"])
                disconnect(.tooManyRequests)
                return
            }
            let command: Command
            do throws(MalformedCommand) {
                guard let json = JSONValue.parse(line) else { throw MalformedCommand() }
                command = try Command(json: json)
            } catch {
                node.logger.debug("undecodable command", metadata: ["client": "\(id)"])
                disconnect(.badRequest)
                return
            }
            await dispatch(command)
        }
    }

    /// One command's worth of the client's rate allowance; false when it is used up.
    private func takeCommandAllowance() -> Bool {
        let configuration = node.configuration
        guard configuration.clientCommandRate > 0 else { return true }
        let now = ContinuousClock.now
        return state.withLock {
            $0.commandAllowance.take(at: now, rate: configuration.clientCommandRate, burst: max(1, configuration.clientCommandBurst))
        }
    }

    private func dispatch(_ command: Command) async {
        let status = state.withLock { $0.status }
        guard status != .closed else { return }
        let id = command.id ?? 0
        if command.isEmpty { return }  // pong
        // Publishes overlap; any other command waits for their replies, so it sees their effects
        // (history, for one) and its reply comes after theirs.
        if command.publish == nil { await publishesBelow(1) }
        if status == .connecting {
            guard let connect = command.connect, id > 0 else {
                disconnect(.badRequest)
                return
            }
            await self.connect(id: id, connect)
            return
        }
        if let send = command.send {
            _ = send
            return
        }
        guard id > 0 else {
            disconnect(.badRequest)
            return
        }
        do {
            if command.connect != nil {
                disconnect(.badRequest)
            } else if let request = command.subscribe {
                try await subscribe(id: id, request)
            } else if let request = command.unsubscribe {
                try await unsubscribe(id: id, channel: try require(request.channel))
            } else if let request = command.publish {
                try await publish(id: id, request)
            } else if let request = command.presence {
                try await presence(id: id, channel: try require(request.channel))
            } else if let request = command.presence_stats {
                try await presenceStats(id: id, channel: try require(request.channel))
            } else if let request = command.history {
                try await history(id: id, request)
            } else if let request = command.rpc {
                guard node.configuration.rpc else { throw GatewayError.methodNotFound }
                let data = request.data?.serialized
                reply(Reply.result(id: id, method: "rpc") { writer in
                    if let data { writer.rawField("data", data) }
                })
            } else if let request = command.refresh {
                try refresh(id: id, token: try require(request.token))
            } else if let request = command.sub_refresh {
                try subRefresh(id: id, channel: try require(request.channel), token: try require(request.token))
            } else if command.ping != nil {
                reply(Reply.result(id: id, method: "ping") { _ in })
            } else {
                throw GatewayError.methodNotFound
            }
        } catch let error as GatewayError {
            await publishesBelow(1)
            reply(Reply.error(id: id, error))
        } catch let disconnect as Disconnect {
            self.disconnect(disconnect)
        } catch {
            node.logger.error("command failed", metadata: ["client": "\(self.id)", "error": "\(error)"])
            await publishesBelow(1)
            reply(Reply.error(id: id, .internal))
        }
    }

    /// Waits until fewer than `limit` of this connection's publishes are in flight.
    private func publishesBelow(_ limit: Int) async {
        guard state.withLock({ $0.publishesInFlight >= limit }) else { return }
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Bool in
                guard state.publishesInFlight >= limit else { return true }
                state.publishWaiter = (limit, continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// A publish's reply; replies come in the order the publishes were sent.
    private func publishFinished(id: UInt32, _ result: Result<StreamPosition, GatewayError>) {
        switch result {
        case .success: reply(Reply.result(id: id, method: "publish") { _ in })
        case .failure(let error): reply(Reply.error(id: id, error))
        }
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.publishesInFlight -= 1
            guard let waiter = state.publishWaiter, state.publishesInFlight < waiter.limit else { return nil }
            state.publishWaiter = nil
            return waiter.continuation
        }
        waiter?.resume()
    }

    private func require(_ value: String?) throws(GatewayError) -> String {
        guard let value, !value.isEmpty else { throw .badRequest }
        return value
    }

    // MARK: outbound

    /// Queues a message; a client whose queue is full is disconnected as slow.
    func reply(_ message: String) {
        node.metrics.messagesOut.add(1, ordering: .relaxed)
        if !transport.write(message) { slow() }
    }

    func slow() {
        node.metrics.slowDisconnects.add(1, ordering: .relaxed)
        disconnect(.slow)
    }

    /// Closes the connection with a code and cleans up (idempotent).
    func disconnect(_ disconnect: Disconnect) {
        guard let closed = markClosed() else { return }
        transport.close(disconnect)
        node.logger.debug("client disconnected", metadata: ["client": "\(id)", "code": "\(disconnect.code)"])
        Task { await node.cleanUp(self, user: closed.user, subscriptions: closed.subscriptions) }
    }

    /// The transport is gone (the peer closed the connection).
    func transportClosed() async {
        guard let closed = markClosed() else { return }
        await node.cleanUp(self, user: closed.user, subscriptions: closed.subscriptions)
    }

    private func markClosed() -> (user: String, subscriptions: [String: Subscription], wasConnected: Bool)? {
        state.withLock { state in
            guard state.status != .closed else { return nil }
            let wasConnected = state.status == .connected
            state.status = .closed
            let subscriptions = state.subscriptions
            state.subscriptions = [:]
            return (state.user, subscriptions, wasConnected)
        }
    }

    // MARK: connect and refresh

    private func connect(id: UInt32, _ request: ConnectRequest) async {
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

    private func refresh(id: UInt32, token text: String) throws {
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

    private func subRefresh(id: UInt32, channel: String, token text: String) throws {
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

    private func verifySubscriptionToken(_ text: String, channel: String, now: Int64) throws(GatewayError) -> SubscriptionToken {
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

    // MARK: subscriptions

    private func subscribe(id: UInt32, _ request: SubscribeRequest) async throws {
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

    /// Registers the subscription (buffering live publications), joins the broker channel, reads
    /// the position or recovers history; answers the subscribe result as a JSON object. The
    /// subscription stays buffering until `activate` writes the reply.
    private func prepareSubscription(channel: String, request: SubscribeRequest, serverSide: Bool) async throws -> String {
        let configuration = node.configuration
        guard node.rules.isValidName(channel) else { throw GatewayError.badRequest }
        guard let namespaceOptions = node.rules.options(for: channel) else { throw GatewayError.unknownChannel }
        let now = Clock.seconds()
        let (user, connInfo) = state.withLock { ($0.user, $0.connInfo) }

        var token: SubscriptionToken?
        if let text = request.token, !text.isEmpty {
            token = try verifySubscriptionToken(text, channel: channel, now: now)
        } else if !serverSide, !node.rules.maySubscribeWithoutToken(channel: channel, user: user, options: namespaceOptions) {
            throw GatewayError.permissionDenied
        }
        var options = namespaceOptions
        if let override = token?.override {
            if let value = override["presence"] { options.presence = value }
            if let value = override["join_leave"] { options.joinLeave = value }
            if let value = override["force_push_join_leave"] { options.forcePushJoinLeave = value }
            if let value = override["force_recovery"] { options.forceRecovery = value }
            if let value = override["force_positioning"] { options.forcePositioning = value }
        }
        let recoverable = options.historyEnabled && (options.forceRecovery || request.recoverable == true || serverSide)
        let positioned = options.historyEnabled && (recoverable || options.forcePositioning || request.positioned == true)
        let joinLeave = options.joinLeave && (options.forcePushJoinLeave || request.join_leave == true)
        let chanInfo = token?.info

        let registered = state.withLock { state -> GatewayError? in
            guard state.status == .connected else { return .internal }
            guard state.subscriptions[channel] == nil else { return .alreadySubscribed }
            guard state.subscriptions.count < configuration.clientChannelLimit else { return .limitExceeded }
            var subscription = Subscription()
            subscription.tracksPosition = positioned
            subscription.expiresAt = token?.expiresAt
            subscription.joinLeave = joinLeave
            subscription.presence = options.presence
            subscription.chanInfo = chanInfo
            subscription.serverSide = serverSide
            state.subscriptions[channel] = subscription
            return nil
        }
        if let registered { throw registered }

        do {
            // Subscribe in the broker before reading history so nothing published in between is lost.
            node.hub.addSubscriber(self, to: channel)
            try await node.brokerSubscriptions.acquire(channel)
        } catch {
            node.hub.removeSubscriber(self, from: channel)
            state.withLock { _ = $0.subscriptions.removeValue(forKey: channel) }
            throw error
        }

        var publications: [Publication] = []
        var position: StreamPosition?
        var recovered = false
        let wasRecovering = request.recover == true && recoverable
        do {
            if positioned {
                if wasRecovering, let epoch = request.epoch {
                    let since = StreamPosition(offset: request.offset ?? 0, epoch: epoch)
                    let result = try await node.broker.history(
                        channel: channel,
                        query: HistoryQuery(since: since, limit: options.historySize, metaTTL: configuration.historyMetaTTL))
                    position = result.position
                    if result.position.epoch == since.epoch {
                        publications = result.publications
                        if let first = publications.first {
                            recovered = first.offset == since.offset + 1
                        } else {
                            recovered = result.position.offset == since.offset
                        }
                    }
                    if !recovered, let flag = request.flag, flag & 2 != 0 {
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
                state.subscriptions[channel]?.offset = max(position.offset, publications.last?.offset ?? 0)
                state.subscriptions[channel]?.epoch = position.epoch
            }
        }
        if options.joinLeave {
            try? await node.broker.publishJoin(
                channel: channel, info: ClientInfo(user: user, client: id, connInfo: connInfo, chanInfo: chanInfo))
        }

        var writer = JSONWriter(capacity: 128)
        writer.beginObject()
        if let expiresAt = token?.expiresAt {
            writer.field("expires", true)
            writer.field("ttl", max(0, expiresAt - now))
        }
        if recoverable { writer.field("recoverable", true) }
        if positioned { writer.field("positioned", true) }
        if let position {
            if !position.epoch.isEmpty { writer.field("epoch", position.epoch) }
            let offset = max(position.offset, publications.last?.offset ?? 0)
            if offset > 0 { writer.field("offset", offset) }
        }
        if !publications.isEmpty {
            writer.key("publications")
            writer.beginArray()
            for publication in publications { publication.write(to: &writer) }
            writer.endArray()
        }
        if wasRecovering { writer.field("was_recovering", true) }
        if recovered { writer.field("recovered", true) }
        if let data = token?.data { writer.rawField("data", data) }
        writer.endObject()
        return writer.output
    }

    /// Writes `message` (the subscribe reply or push) and then, in order, the publications that
    /// arrived while the subscriptions were prepared; drops those the reply already holds.
    private func activate(channels: [String], after message: String) {
        node.metrics.messagesOut.add(1, ordering: .relaxed)
        let ok = state.withLock { state -> Bool in
            guard state.status == .connected else { return true }
            guard transport.write(message) else { return false }
            for channel in channels {
                guard var subscription = state.subscriptions[channel] else { continue }
                let buffered = subscription.buffer
                subscription.buffer = []
                subscription.buffering = false
                for publication in buffered {
                    if subscription.tracksPosition, publication.offset > 0 {
                        if publication.offset <= subscription.offset { continue }
                        subscription.offset = publication.offset
                    }
                    guard transport.write(publication.message) else { return false }
                }
                state.subscriptions[channel] = subscription
            }
            return true
        }
        if !ok { slow() }
    }

    /// Undoes a half-made subscription.
    private func abandon(channel: String) async {
        let removed = state.withLock { $0.subscriptions.removeValue(forKey: channel) != nil }
        guard removed else { return }
        if node.hub.removeSubscriber(self, from: channel) {}
        await node.brokerSubscriptions.release(channel)
    }

    private func unsubscribe(id: UInt32, channel: String) async throws {
        let removed = state.withLock { $0.subscriptions.removeValue(forKey: channel) }
        if let removed {
            await node.leave(self, user: user, channel: channel, subscription: removed)
        }
        reply(Reply.result(id: id, method: "unsubscribe") { _ in })
    }

    /// Ends a subscription from the server side with an unsubscribe push.
    func serverUnsubscribe(channel: String, code: Int, reason: String) async {
        let removed = state.withLock { $0.subscriptions.removeValue(forKey: channel) }
        guard let removed else { return }
        reply(Reply.push(channel: channel, kind: "unsubscribe") { writer in
            writer.beginObject()
            writer.field("code", code)
            writer.field("reason", reason)
            writer.endObject()
        })
        await node.leave(self, user: user, channel: channel, subscription: removed)
    }

    // MARK: delivery (called by the node's fan-out; must not block)

    /// Sends a publication's push (`message`, shared by all subscribers) at `offset` in the channel.
    func deliver(channel: String, offset: UInt64, message: OutboundMessage) {
        enum Outcome { case skip, written, slow, gap }
        let outcome = state.withLock { state -> Outcome in
            guard state.status == .connected, var subscription = state.subscriptions[channel] else { return .skip }
            if subscription.buffering {
                state.subscriptions[channel]?.buffer.append((offset, message))
                return .skip
            }
            if subscription.tracksPosition, offset > 0 {
                if offset <= subscription.offset { return .skip }
                if offset > subscription.offset + 1 { return .gap }
                subscription.offset = offset
                state.subscriptions[channel] = subscription
            }
            return transport.write(message) ? .written : .slow
        }
        switch outcome {
        case .skip: break
        case .written: node.metrics.messagesOut.add(1, ordering: .relaxed)
        case .slow: slow()
        case .gap:
            // A publication went missing between broker and node: make the client resubscribe and recover.
            Task { await serverUnsubscribe(channel: channel, code: UnsubscribeCode.insufficient, reason: "insufficient state") }
        }
    }

    func deliverJoinLeave(channel: String, message: String) {
        let ok = state.withLock { state -> Bool in
            guard state.status == .connected, let subscription = state.subscriptions[channel], subscription.joinLeave,
                !subscription.buffering
            else { return true }
            return transport.write(message)
        }
        if !ok { slow() }
    }

    // MARK: publish, presence, history

    private func publish(id: UInt32, _ request: PublishRequest) async throws {
        let channel = try require(request.channel)
        guard let data = request.data else { throw GatewayError.badRequest }
        guard node.rules.isValidName(channel) else { throw GatewayError.badRequest }
        guard let options = node.rules.options(for: channel) else { throw GatewayError.unknownChannel }
        let (user, connInfo, chanInfo, subscribed) = state.withLock { state in
            (state.user, state.connInfo, state.subscriptions[channel]?.chanInfo, state.subscriptions[channel] != nil)
        }
        guard options.allowPublishForClient || (options.allowPublishForSubscriber && subscribed) else {
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

    private func checkReadAccess(channel: String, allowed: (ChannelOptions) -> Bool) throws(GatewayError) -> ChannelOptions {
        guard node.rules.isValidName(channel) else { throw .badRequest }
        guard let options = node.rules.options(for: channel) else { throw .unknownChannel }
        let subscribed = state.withLock { $0.subscriptions[channel].map { !$0.buffering } ?? false }
        guard allowed(options), subscribed else { throw .permissionDenied }
        return options
    }

    private func presence(id: UInt32, channel: String) async throws {
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

    private func presenceStats(id: UInt32, channel: String) async throws {
        let options = try checkReadAccess(channel: channel) { $0.allowPresenceForSubscriber }
        guard options.presence else { throw GatewayError.notAvailable }
        let stats = try await node.presence.stats(channel: channel)
        reply(Reply.result(id: id, method: "presence_stats") { writer in
            writer.field("num_clients", stats.numClients)
            writer.field("num_users", stats.numUsers)
        })
    }

    private func history(id: UInt32, _ request: HistoryRequest) async throws {
        let channel = try require(request.channel)
        let options = try checkReadAccess(channel: channel) { $0.allowHistoryForSubscriber }
        guard options.historyEnabled else { throw GatewayError.notAvailable }
        let result = try await node.history(channel: channel, limit: request.limit ?? 0, since: request.since, reverse: request.reverse ?? false)
        reply(Reply.result(id: id, method: "history") { Node.writeHistory(result, to: &$0) })
    }

    // MARK: timers (driven by the node once a second)

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

/// A token bucket: `burst` commands at once, refilled at `rate` per second.
struct CommandAllowance: Sendable {
    private var tokens: Double?
    private var refilledAt = ContinuousClock.now

    mutating func take(at now: ContinuousClock.Instant, rate: Int, burst: Int) -> Bool {
        let elapsed = now - refilledAt
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        tokens = min(Double(burst), (tokens ?? Double(burst)) + seconds * Double(rate))
        refilledAt = now
        guard tokens! >= 1 else { return false }
        tokens! -= 1
        return true
    }
}

/// Wall-clock seconds, as JWT claims use.
enum Clock {
    static func seconds() -> Int64 { Int64(Date().timeIntervalSince1970) }
}
