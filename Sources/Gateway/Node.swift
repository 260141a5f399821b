/// The node (after centrifuge's node.go): owns the hub, broker and presence manager, fans out what the
/// broker delivers, and carries out operations shared by clients and the server API.
import Foundation
import Logging
import NIOCore
import SwitchboardCore
import Synchronization

/// The gateway's front object: owns the hub of local connections, the broker and the presence
/// manager, fans out what the broker delivers, and carries out server API commands.
final class Node: BrokerEventHandler {
    static let version = "switchboard-gateway 1.0"

    let id: String
    let name: String
    let configuration: GatewayConfiguration
    let rules: ChannelRules
    let broker: any Broker
    let presence: any PresenceManager
    let hub = Hub()
    let metrics = Metrics()
    let logger: Logger
    let brokerSubscriptions: BrokerSubscriptions
    /// The HMAC keys of the token secrets (current, then previous).
    let tokenKeys: JWT.Keys
    let startedAt = Date()
    /// Set when shutdown begins: a `connect` after it is answered with 3001, so a client that
    /// reached this node while it closes goes on to another (or to this node's successor).
    let stopping = Atomic<Bool>(false)

    let directory: any NodeDirectory
    let positionCheckTurn = PositionCheckTurn()
    let timerSettings: ConnectionState.TimerSettings
    /// The members a `connect` result ends with, the same for every client of this node
    /// (`"ping":…,"pong":true,"node":"…"`; a unidirectional client answers pings at the
    /// WebSocket level, so without `pong`): written once, not once per connect.
    let connectResultTail: (bidirectional: String, unidirectional: String)

    init(
        configuration: GatewayConfiguration, broker: any Broker, presence: any PresenceManager,
        directory: any NodeDirectory = LocalNodeDirectory(), logger: Logger
    ) {
        self.directory = directory
        let id = UUID().uuidString.lowercased()
        self.id = id
        self.name = ProcessInfo.processInfo.hostName + ":\(configuration.port)"
        self.configuration = configuration
        self.timerSettings = ConnectionState.TimerSettings(configuration)
        self.rules = ChannelRules(configuration: configuration)
        self.broker = broker
        self.presence = presence
        self.logger = logger
        self.brokerSubscriptions = BrokerSubscriptions(broker: broker)
        self.tokenKeys = JWT.Keys(secrets: [configuration.tokenSecret, configuration.previousTokenSecret].compactMap { $0 })
        func tail(pong: Bool) -> String {
            var writer = JSONWriter()
            writer.field("ping", configuration.pingInterval)
            if pong { writer.field("pong", true) }
            writer.field("node", id)
            return writer.output
        }
        self.connectResultTail = (tail(pong: true), tail(pong: false))
    }

    func start() async throws {
        try await broker.start(handler: self)
    }

    /// Drives pings, expiry and presence refresh once a second, announces this node to the others
    /// every few seconds, and checks subscribers' positions every
    /// `client_channel_position_check_delay` seconds, until cancelled.
    func runTimers() async {
        var tick = 0
        while !Task.isCancelled {
            if tick % Self.announceInterval == 0 {
                do {
                    try await directory.announce(info, channels: hub.channels())
                } catch {
                    logger.warning("node announcement failed", metadata: ["error": "\(error)"])
                }
            }
            tick += 1
            if configuration.channelPositionCheckDelay > 0, tick % configuration.channelPositionCheckDelay == 0 {
                Task { await checkPositions() }
            }
            try? await Task.sleep(for: .seconds(1))
            let now = Clock.seconds()
            for client in hub.allClients() {
                await client.tick(now: now)
            }
        }
    }

    /// Seconds between announcements to the node directory.
    static let announceInterval = 3

    /// This node's live figures for the server API's `info`.
    var info: NodeInfo {
        NodeInfo(
            uid: id, name: name, version: Self.version, numClients: hub.connectionCount, numUsers: hub.userCount,
            numChannels: hub.channels().count, numSubs: hub.subscriptionCount, uptime: Int(Date().timeIntervalSince(startedAt)),
            messagesIn: metrics.messagesIn.load(ordering: .relaxed), messagesOut: metrics.messagesOut.load(ordering: .relaxed),
            rss: ProcessStats.residentBytes())
    }

    /// From now on a `connect` is answered with 3001.
    func beginStopping() {
        stopping.store(true, ordering: .relaxed)
    }

    /// Closes every connection with 3001 (the SDKs reconnect, to another node if there is one).
    /// The listener is closed before this, so they cannot come back to this node.
    func shutdown() async {
        beginStopping()
        for client in hub.allClients() {
            client.disconnect(.shutdown)
        }
        try? await directory.withdraw(uid: id)
        await broker.stop()
    }

    func makeClient(transport: any Transport) -> Client {
        Client(node: self, transport: transport)
    }

    // MARK: client lifecycle

    func cleanUp(_ client: Client, user: String, subscriptions: [String: Client.Subscription]) async {
        hub.remove(client, user: user)
        for (channel, subscription) in subscriptions {
            await leave(client, user: user, channel: channel, subscription: subscription)
        }
    }

    /// A client left a channel: local bookkeeping, broker, presence, leave event.
    func leave(_ client: Client, user: String, channel: String, subscription: Client.Subscription) async {
        hub.removeSubscriber(client, from: channel)
        await brokerSubscriptions.release(channel)
        if subscription.presence {
            try? await presence.remove(channel: channel, clientID: client.id)
        }
        if let options = rules.options(for: channel), options.joinLeave, !subscription.buffering {
            try? await broker.publishLeave(channel: channel, info: ClientInfo(user: user, client: client.id, chanInfo: subscription.chanInfo))
        }
    }

    // MARK: broker events

    func handlePublication(channel: String, publication: Publication, position: StreamPosition) {
        let loops = hub.subscribersByLoop(of: channel)
        guard !loops.isEmpty else { return }
        // Encoded once; every subscriber's connection shares these bytes.
        let message = OutboundMessage(shared: Reply.publication(channel: channel, publication))
        let offset = publication.offset
        fanOut(loops) { client, batch in client.deliver(channel: channel, offset: offset, message: message, batch: batch) }
    }

    /// A publication from another node, still encoded: its push is built around the JSON without
    /// parsing it.
    func handleEncodedPublication(channel: String, offset: UInt64, epoch: String, json: ByteBuffer) {
        let loops = hub.subscribersByLoop(of: channel)
        guard !loops.isEmpty else { return }
        guard let message = Reply.encodedPublication(channel: channel, offset: offset, json: json.readableBytesView) else {
            defaultHandleEncodedPublication(channel: channel, offset: offset, epoch: epoch, json: json)
            return
        }
        fanOut(loops) { client, batch in client.deliver(channel: channel, offset: offset, message: message, batch: batch) }
    }

    /// Hands a publication's subscribers to the event loops their sockets are served on, each
    /// loop's in one task of that loop (`FlushBatcher.fanOut`), so every loop writes to its own
    /// sockets as it goes and the loops work in parallel. Connections without a loop of their own
    /// are delivered to here.
    private func fanOut(_ loops: [Hub.LoopSubscribers], _ deliver: @escaping @Sendable (Client, SendBatch?) -> Void) {
        for loop in loops {
            if let batcher = loop.batcher {
                batcher.fanOut(loop.clients, deliver: deliver)
            } else {
                for client in loop.clients.values { deliver(client, nil) }
            }
        }
    }

    func handleJoin(channel: String, info: ClientInfo) {
        let message = Reply.push(channel: channel, kind: "join") { writer in
            writer.beginObject()
            writer.key("info")
            info.write(to: &writer)
            writer.endObject()
        }
        for client in hub.subscribers(of: channel) { client.deliverJoinLeave(channel: channel, message: message) }
    }

    func handleLeave(channel: String, info: ClientInfo) {
        let message = Reply.push(channel: channel, kind: "leave") { writer in
            writer.beginObject()
            writer.key("info")
            info.write(to: &writer)
            writer.endObject()
        }
        for client in hub.subscribers(of: channel) { client.deliverJoinLeave(channel: channel, message: message) }
    }

    func handleResubscribed() {
        Task { await checkPositions() }
    }

    func handleControl(_ command: ControlCommand) {
        let clients = hub.clients(ofUser: command.user).filter { command.client == nil || $0.id == command.client }
        guard !clients.isEmpty else { return }
        switch command.kind {
        case .disconnect:
            let disconnect = Disconnect(code: command.code ?? Disconnect.forceNoReconnect.code, reason: command.reason ?? Disconnect.forceNoReconnect.reason)
            for client in clients { client.disconnect(disconnect) }
        case .unsubscribe:
            guard let channel = command.channel else { return }
            for client in clients {
                Task { await client.serverUnsubscribe(channel: channel, code: UnsubscribeCode.server, reason: "server unsubscribe") }
            }
        case .subscribe:
            guard let channel = command.channel else { return }
            for client in clients {
                Task { await client.serverSubscribe(channel: channel) }
            }
        }
    }

    // MARK: operations shared by clients and the server API

    func publish(
        channel: String, data: String, info: ClientInfo?, options: ChannelOptions, skipHistory: Bool = false,
        tags: [String: String]? = nil, idempotencyKey: String? = nil
    ) async throws -> StreamPosition {
        try await awaitCompletion {
            startPublish(
                channel: channel, data: data, info: info, options: options, skipHistory: skipHistory, tags: tags,
                idempotencyKey: idempotencyKey, completion: $0)
        }
    }

    /// Queues a publish in the broker; `completion` runs once with the position or the error.
    /// Publishes started one after another take effect in that order.
    func startPublish(
        channel: String, data: String, info: ClientInfo?, options: ChannelOptions, skipHistory: Bool = false,
        tags: [String: String]? = nil, idempotencyKey: String? = nil,
        completion: @escaping @Sendable (Result<StreamPosition, GatewayError>) -> Void
    ) {
        var publishOptions = PublishOptions()
        publishOptions.idempotencyKey = idempotencyKey
        if options.historyEnabled && !skipHistory {
            publishOptions.historySize = options.historySize
            publishOptions.historyTTL = options.historyTTL
            publishOptions.historyMetaTTL = configuration.historyMetaTTL
        }
        let logger = self.logger
        broker.startPublish(channel: channel, publication: Publication(data: data, info: info, tags: tags), options: publishOptions) { result in
            completion(
                result.mapError { error in
                    logger.error("publish failed", metadata: ["channel": "\(channel)", "error": "\(error)"])
                    return GatewayError.internal
                })
        }
    }

    func history(channel: String, limit: Int, since: StreamPositionRequest?, reverse: Bool) async throws -> HistoryResult {
        guard let options = rules.options(for: channel) else { throw GatewayError.unknownChannel }
        guard options.historyEnabled else { throw GatewayError.notAvailable }
        var query = HistoryQuery(limit: limit, reverse: reverse, metaTTL: configuration.historyMetaTTL)
        if let since {
            query.since = StreamPosition(offset: since.offset ?? 0, epoch: since.epoch ?? "")
        }
        let result = try await broker.history(channel: channel, query: query)
        if let since = query.since, !since.epoch.isEmpty, since.epoch != result.position.epoch {
            throw GatewayError.unrecoverablePosition
        }
        return result
    }

    static func writeHistory(_ result: HistoryResult, to writer: inout JSONWriter) {
        if !result.publications.isEmpty {
            writer.key("publications")
            writer.beginArray()
            for publication in result.publications { publication.write(to: &writer) }
            writer.endArray()
        }
        if !result.position.epoch.isEmpty { writer.field("epoch", result.position.epoch) }
        if result.position.offset > 0 { writer.field("offset", result.position.offset) }
    }
}
