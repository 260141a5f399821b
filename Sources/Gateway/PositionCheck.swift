/// Position checks (after centrifuge's client position check): finding subscribers that fell behind
/// their channel's stream because a publication never reached this node, and making them recover.
import Foundation
import Logging
import Synchronization

extension ConnectionState {
    /// Where a subscription stands against its channel's stream top.
    enum Standing: Equatable, Sendable {
        /// Caught up, or nothing to compare (no position tracked, still subscribing, not subscribed).
        case current
        /// The stream holds publications past the last one delivered: they may still be on their way.
        case behind
        /// The stream was reset (another epoch): what the client holds no longer continues it.
        case stale
    }

    /// The subscription to `channel` when it is positioned and past its subscribe reply.
    private func positionedSubscription(_ channel: String) -> Subscription? {
        guard status == .connected, let subscription = subscriptions[channel], subscription.tracksPosition, !subscription.buffering
        else { return nil }
        return subscription
    }

    /// Whether the subscription to `channel` is positioned and past its subscribe reply.
    func tracksPosition(in channel: String) -> Bool {
        positionedSubscription(channel) != nil
    }

    /// How the subscription to `channel` stands against the stream position `top`.
    func standing(in channel: String, against top: StreamPosition) -> Standing {
        guard let subscription = positionedSubscription(channel) else { return .current }
        if !subscription.epoch.isEmpty, !top.epoch.isEmpty, subscription.epoch != top.epoch { return .stale }
        return subscription.offset >= top.offset ? .current : .behind
    }
}

extension Client {
    func tracksPosition(in channel: String) -> Bool {
        state.withLock { $0.tracksPosition(in: channel) }
    }

    func standing(in channel: String, against top: StreamPosition) -> ConnectionState.Standing {
        state.withLock { $0.standing(in: channel, against: top) }
    }

    /// Tells the client its subscription lost its place (2500); the SDKs resubscribe and recover
    /// from history. Used for a gap seen on delivery and for a position check that finds one. A
    /// subscription the client cannot make again itself (a server-side one, or any of a
    /// unidirectional connection) loses the connection instead (3010, reconnect): it comes back
    /// with its subscriptions and, naming its positions, recovers.
    func unsubscribeAsBehind(_ channel: String) async {
        let serverSide = state.withLock { $0.subscriptions[channel]?.serverSide ?? false }
        if serverSide || transport.unidirectional {
            disconnect(.insufficientState)
            return
        }
        await serverUnsubscribe(channel: channel, code: UnsubscribeCode.insufficient, reason: "insufficient state")
    }
}

/// Runs one position check at a time; a check asked for while one runs makes that one go again
/// when it ends (the later request may know of a loss the running check started too early for).
final class PositionCheckTurn: Sendable {
    private let state = Mutex<(running: Bool, again: Bool)>((false, false))

    /// True when the caller should run the check; false when the running one will go again.
    func begin() -> Bool {
        state.withLock { state in
            if state.running {
                state.again = true
                return false
            }
            state.running = true
            return true
        }
    }

    /// True when the caller should run the check once more.
    func end() -> Bool {
        state.withLock { state in
            if state.again {
                state.again = false
                return true
            }
            state.running = false
            return false
        }
    }
}

extension Node {
    /// A publication can be lost between the broker and this node: Redis pub/sub drops what is
    /// published while a node's connection is down, and a gap is seen only when the channel's next
    /// publication arrives, which may never come. So after each reconnection, and every
    /// `client_channel_position_check_delay` seconds, every positioned subscriber's last offset is
    /// compared with its channel's stream top. A subscriber on another epoch is unsubscribed with
    /// 2500 (insufficient state) at once; one behind is given `settle` for publications still in
    /// flight to arrive and is unsubscribed if it is still short of that top. The SDKs then
    /// resubscribe and recover the missed publications from history.
    func checkPositions(settle: Duration = .seconds(1)) async {
        guard positionCheckTurn.begin() else { return }
        repeat {
            await checkPositionsOnce(settle: settle)
        } while positionCheckTurn.end()
    }

    /// Stream tops read at once during a check (a node may hold thousands of channels; one read
    /// at a time would take a round trip each).
    static let positionReadsInFlight = 16

    private func checkPositionsOnce(settle: Duration) async {
        let channels = hub.channels().keys.filter { channel in
            rules.options(for: channel)?.historyEnabled == true && hub.subscribers(of: channel).contains { $0.tracksPosition(in: channel) }
        }
        var behind: [(client: Client, channel: String, top: StreamPosition)] = []
        var unsubscribed = 0
        for (channel, top) in await streamTops(of: channels) {
            for client in hub.subscribers(of: channel) {
                switch client.standing(in: channel, against: top) {
                case .current: break
                case .behind: behind.append((client, channel, top))
                case .stale:
                    unsubscribed += 1
                    await client.unsubscribeAsBehind(channel)
                }
            }
        }
        if !behind.isEmpty {
            try? await Task.sleep(for: settle)
            for (client, channel, top) in behind where client.standing(in: channel, against: top) != .current {
                unsubscribed += 1
                await client.unsubscribeAsBehind(channel)
            }
        }
        if unsubscribed > 0 {
            metrics.positionCheckUnsubscribes.add(unsubscribed, ordering: .relaxed)
            logger.info("subscribers behind their channels resubscribe to recover", metadata: ["subscriptions": "\(unsubscribed)"])
        }
    }

    /// The stream top of each channel, `positionReadsInFlight` reads at a time. A channel whose
    /// read fails is left out (the broker is unreachable: the next check, after the next
    /// reconnection, reads it again).
    private func streamTops(of channels: [String]) async -> [(String, StreamPosition)] {
        let query = HistoryQuery(limit: 0, metaTTL: configuration.historyMetaTTL)
        return await withTaskGroup(of: (String, StreamPosition?).self) { group in
            var pending = channels.makeIterator()
            func readNext() -> Bool {
                guard let channel = pending.next() else { return false }
                group.addTask { (channel, try? await self.broker.history(channel: channel, query: query).position) }
                return true
            }
            for _ in 0..<Self.positionReadsInFlight {
                guard readNext() else { break }
            }
            var tops: [(String, StreamPosition)] = []
            var unread = 0
            while let (channel, top) = await group.next() {
                if let top { tops.append((channel, top)) } else { unread += 1 }
                _ = readNext()
            }
            if unread > 0 {
                logger.warning("position check could not read every stream; the next check reads them again", metadata: ["unread": "\(unread)"])
            }
            return tops
        }
    }
}
