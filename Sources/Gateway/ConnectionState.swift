/// The protocol state machine of one connection as a value type: what may happen in which state
/// (connect first, then subscriptions and the other commands; nothing once closed), the connect,
/// refresh, subscribe, unsubscribe and close transitions, and the once-a-second timers. Each
/// transition answers what the client must do; `Client` keeps one `ConnectionState` under its lock
/// and carries the answers out (replies, broker and presence calls, disconnects). Nothing here does
/// I/O, so all of it is tested without sockets.
import Realtime

/// One connection's protocol state.
struct ConnectionState: Sendable {
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

    var status = Status.connecting
    var user = ""
    var connInfo: String?
    /// The connection token's `caps` claim.
    var capabilities: [RealtimeCapability] = []
    var expiresAt: Int64?
    var subscriptions: [String: Subscription] = [:]
    var nextPingAt: Int64 = 0
    var pongDeadline: Int64?
    /// False for a client that cannot answer pings (an HTTP stream): no pong deadline.
    var answersPings = true
    var lastPresenceRefresh: Int64 = 0
    var commandAllowance = CommandAllowance()
    /// Publishes sent to the broker whose replies are still to come.
    var publishesInFlight = 0
    /// The command loop waiting until at most `limit` publishes are in flight.
    var publishWaiter: (limit: Int, continuation: CheckedContinuation<Void, Never>)?

    /// Seconds a connection may stay without a successful connect before it is closed as stale.
    static let connectTimeout: Int64 = 10

    // MARK: commands

    /// What the client does with a decoded command.
    enum Admission {
        /// Nothing at all: the connection is closed, or the command is a pong (`{}`).
        case skip
        /// Nothing but waiting for the connection's publishes: a `send` (accepted, never answered).
        case accept
        /// The first command, `connect`.
        case connect(id: UInt32, ConnectRequest)
        /// Any other command of a connected client, answered as reply `id`.
        case run(id: UInt32)
        /// A command that may not come now (anything before connect, a second connect, a command
        /// without an id): the connection is closed.
        case disconnect(Disconnect)
    }

    /// Which commands may run in which state: `connect` (with an id) first and only once, then
    /// every command with an id, and `send` without one.
    func admit(_ command: Command) -> Admission {
        guard status != .closed, !command.isEmpty else { return .skip }
        let id = command.id ?? 0
        if status == .connecting {
            guard let connect = command.connect, id > 0 else { return .disconnect(.badRequest) }
            return .connect(id: id, connect)
        }
        if command.send != nil { return .accept }
        guard id > 0, command.connect == nil else { return .disconnect(.badRequest) }
        return .run(id: id)
    }

    // MARK: connect and refresh

    /// The moment of the first ping: random in the second half of the interval, so a reconnect
    /// storm does not ping in lockstep.
    static func firstPingAt(now: Int64, pingInterval: Int) -> Int64 {
        let interval = Int64(pingInterval)
        var generator = RandomBytes()
        return now + max(1, Int64.random(in: (interval / 2)...max(interval / 2, interval), using: &generator))
    }

    /// connecting → connected as `user`; false when the connection is no longer connecting (it
    /// closed while the token was checked).
    mutating func connect(user: String, connInfo: String?, expiresAt: Int64?, now: Int64, firstPingAt: Int64) -> Bool {
        guard status == .connecting else { return false }
        status = .connected
        self.user = user
        self.connInfo = connInfo
        self.expiresAt = expiresAt
        nextPingAt = firstPingAt
        lastPresenceRefresh = now
        return true
    }

    /// A new connection token: false when it names another user (the client is then disconnected).
    mutating func refresh(user: String, expiresAt: Int64?, connInfo: String?, capabilities: [RealtimeCapability]? = nil) -> Bool {
        guard self.user == user else { return false }
        self.expiresAt = expiresAt
        if let capabilities { self.capabilities = capabilities }
        if let connInfo { self.connInfo = connInfo }
        return true
    }

    /// A new subscription token's expiry; false when the client is not subscribed to `channel`.
    mutating func refreshSubscription(_ channel: String, expiresAt: Int64?) -> Bool {
        guard subscriptions[channel] != nil else { return false }
        subscriptions[channel]?.expiresAt = expiresAt
        return true
    }

    // MARK: subscriptions

    /// Registers a subscription (it buffers live publications until the client activates it); the
    /// error to answer when it may not be added.
    mutating func addSubscription(_ channel: String, _ subscription: Subscription, limit: Int) -> GatewayError? {
        guard status == .connected else { return .internal }
        guard subscriptions[channel] == nil else { return .alreadySubscribed }
        guard subscriptions.count < limit else { return .limitExceeded }
        subscriptions[channel] = subscription
        return nil
    }

    /// Ends a subscription; what it was (for the leave), or nil when there was none.
    mutating func removeSubscription(_ channel: String) -> Subscription? {
        subscriptions.removeValue(forKey: channel)
    }

    /// → closed; what to clean up (the user and the subscriptions left), or nil when it was closed already.
    mutating func close() -> (user: String, subscriptions: [String: Subscription], wasConnected: Bool)? {
        guard status != .closed else { return nil }
        let wasConnected = status == .connected
        status = .closed
        let closed = subscriptions
        subscriptions = [:]
        return (user, closed, wasConnected)
    }

    // MARK: timers

    /// What one timer tick asks of the client.
    struct TimerActions {
        enum Action: Equatable { case none, disconnect(Disconnect), ping }
        var action = Action.none
        /// Subscriptions whose token expired beyond the grace: unsubscribed with 2501.
        var expiredSubscriptions: [String] = []
        /// Presence entries to refresh (every presence_ttl / 3).
        var presenceRefreshes: [(channel: String, info: ClientInfo)] = []
    }

    /// The configuration the timers read, as plain numbers: every connection ticks once a second,
    /// and a copy of the whole configuration would retain and release each of its strings and arrays.
    struct TimerSettings: Sendable {
        var expiryGrace: Int64
        var presenceTTL: Int64
        var pingInterval: Int64
        var pongTimeout: Int64

        init(_ configuration: GatewayConfiguration) {
            expiryGrace = Int64(configuration.expiryGrace)
            presenceTTL = Int64(configuration.presenceTTL)
            pingInterval = Int64(configuration.pingInterval)
            pongTimeout = Int64(configuration.pongTimeout)
        }
    }

    /// Once a second: a connection without connect after `connectTimeout` is stale; an expired
    /// connection (beyond `expiry_grace`) or a missed pong closes it; otherwise expired
    /// subscriptions, due presence refreshes and a due ping (which starts the pong deadline).
    mutating func tick(now: Int64, createdAt: Int64, clientID: String, settings configuration: TimerSettings) -> TimerActions {
        var actions = TimerActions()
        switch status {
        case .closed: return actions
        case .connecting:
            if now - createdAt > Self.connectTimeout { actions.action = .disconnect(.stale) }
            return actions
        case .connected: break
        }
        if let expiresAt, now > expiresAt + configuration.expiryGrace {
            actions.action = .disconnect(.expired)
            return actions
        }
        if let deadline = pongDeadline, now > deadline {
            actions.action = .disconnect(.noPong)
            return actions
        }
        for (channel, subscription) in subscriptions {
            if let expiresAt = subscription.expiresAt, now > expiresAt + configuration.expiryGrace {
                actions.expiredSubscriptions.append(channel)
            }
        }
        if now - lastPresenceRefresh >= configuration.presenceTTL / 3 {
            lastPresenceRefresh = now
            for (channel, subscription) in subscriptions where subscription.presence && !subscription.buffering {
                actions.presenceRefreshes.append(
                    (channel, ClientInfo(user: user, client: clientID, connInfo: connInfo, chanInfo: subscription.chanInfo)))
            }
        }
        if now >= nextPingAt {
            nextPingAt = now + configuration.pingInterval
            if answersPings, pongDeadline == nil { pongDeadline = now + configuration.pongTimeout }
            actions.action = .ping
        }
        return actions
    }
}
