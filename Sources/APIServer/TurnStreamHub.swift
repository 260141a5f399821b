/// TurnStreamHub owns the reading of turn streams for every open SSE stream of one api node: a
/// fixed number of Redis connections (at most two, whatever the number of open streams) each
/// blocked in ONE `XREAD` over many `turn:{id}` keys, the fan-out of what they read to every
/// viewer of a turn (several viewers of one turn share one read), and each viewer's bounded
/// buffer (a viewer that falls behind is cut off, to resume by `Last-Event-ID`).
///
/// Two readers, because the cost of one `XREAD` grows with the number of keys it names:
/// - the hot reader follows the turns that had an event in the last `hotIdle` (and the ones just
///   opened), few even with thousands of open streams, so its reads stay short and a token
///   reaches its viewers in the same time at 100 or 10,000 open streams;
/// - the cold reader follows every other open turn (idle tabs, queued turns); the first event of
///   such a turn moves it to the hot reader.
/// A reader whose key set changes is woken by an entry on its own wake stream
/// (`sse:wake:{node}:{hot|cold}`, which it reads along with the turns), never by closing its
/// connection; a reader with no turns left ends, and starts again with the next viewer.
///
/// A read failure (Redis restarting, a timeout) is retried with backoff from the same cursors,
/// so nothing is lost; viewers see heartbeats meanwhile.
import Foundation
import Logging
import NIOCore
import NIOPosix
import RedisClient
import Storage
import Synchronization
import Turns

/// How the hub reads and buffers.
public struct TurnStreamHubSettings: Sendable, Equatable {
    /// Entries a viewer may have waiting (unsent) when more arrive; past it the viewer is cut off
    /// and its client resumes with `Last-Event-ID`.
    public var viewerBufferLimit: Int
    /// Entries read per turn per `XREAD`.
    public var readCount: Int
    /// How long a turn without events stays with the hot reader.
    public var hotIdle: Duration
    /// The `BLOCK` of the hot reader's `XREAD` (a reader is woken earlier when its turns change);
    /// also how late a hot turn without events may move to the cold reader.
    public var block: Duration
    /// The `BLOCK` of the cold reader's `XREAD`. An event on any of its turns, or a change of its
    /// turns, ends the read at once, so this bounds nothing a viewer waits for; it is long
    /// because each read names every idle turn of the node: with 10,000 open streams, a read
    /// every 2 s put about 2 ms of Redis and api time in the hot turns' way each time
    /// (docs/benchmarks/sse.md).
    public var coldBlock: Duration

    public init(
        viewerBufferLimit: Int = 1_024, readCount: Int = 256, hotIdle: Duration = .seconds(10), block: Duration = .seconds(2),
        coldBlock: Duration = .seconds(30)
    ) {
        self.viewerBufferLimit = max(1, viewerBufferLimit)
        self.readCount = max(1, readCount)
        self.hotIdle = hotIdle
        self.block = block
        self.coldBlock = coldBlock
    }
}

/// A Redis stream entry id, ordered as Redis orders them.
struct StreamEntryID: Comparable, Sendable {
    var milliseconds: UInt64
    var sequence: UInt64

    init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let ms = UInt64(parts[0]), let seq = UInt64(parts[1]) else { return nil }
        milliseconds = ms
        sequence = seq
    }

    static func < (a: StreamEntryID, b: StreamEntryID) -> Bool {
        (a.milliseconds, a.sequence) < (b.milliseconds, b.sequence)
    }

    /// True when entry id `a` comes after `b` (ids that do not parse never do).
    static func isAfter(_ a: String, _ b: String) -> Bool {
        guard let a = StreamEntryID(a), let b = StreamEntryID(b) else { return false }
        return b < a
    }
}

public final class TurnStreamHub: Sendable {
    enum Tier: Int, CaseIterable, Sendable {
        case hot = 0
        case cold = 1
        var name: String { self == .hot ? "hot" : "cold" }
    }

    private struct Turn {
        /// The newest entry read for this turn; the readers read after it.
        var cursor: String
        var tier: Tier
        var lastEvent: ContinuousClock.Instant
        var viewers: [ObjectIdentifier: TurnStreamViewer] = [:]
    }

    private struct Reader {
        var running = false
        /// A wake entry was sent and the reader has not re-read its key set since.
        var wakePending = false
        var wakeCursor = "0-0"
    }

    private struct State {
        var turns: [Int64: Turn] = [:]
        /// The turns of each reader, by tier (so a hot read never walks the cold turns).
        var members: [Set<Int64>] = [[], []]
        var readers: [Reader] = [Reader(), Reader()]
        var lastDemotion = ContinuousClock.now

        mutating func move(_ id: Int64, to tier: Tier) {
            guard let old = turns[id]?.tier, old != tier else { return }
            turns[id]?.tier = tier
            members[old.rawValue].remove(id)
            members[tier.rawValue].insert(id)
        }

        mutating func remove(_ id: Int64) {
            guard let turn = turns.removeValue(forKey: id) else { return }
            members[turn.tier.rawValue].remove(id)
        }
    }

    let redis: RedisClient
    let settings: TurnStreamHubSettings
    /// The idle checks of this node's viewers, batched (nil: each viewer asks on its own).
    let lookups: MessageLookups?
    private let logger: Logger
    private let node = UUID().uuidString.lowercased()
    private let state = Mutex(State())

    public init(
        redis: RedisClient, settings: TurnStreamHubSettings = .init(), messages: (any MessageStore)? = nil,
        logger: Logger = Logger(label: "switchboard.sse")
    ) {
        self.redis = redis
        self.settings = settings
        self.lookups = messages.map { MessageLookups(messages: $0) }
        self.logger = logger
    }

    /// Open turns and viewers on this node, and which readers run (for tests and the benchmark).
    public var counts: (turns: Int, viewers: Int, runningReaders: Int) {
        state.withLock { state in
            (state.turns.count, state.turns.values.reduce(0) { $0 + $1.viewers.count }, state.readers.filter(\.running).count)
        }
    }

    /// The key of a reader's wake stream (unprefixed).
    func wakeKey(_ tier: Tier) -> String { "sse:wake:\(node):\(tier.name)" }

    /// Registers a viewer of `messageID` that has seen everything up to `after` ("0-0": nothing).
    /// From now on the viewer gets every entry the hub reads for the turn. When the turn was
    /// followed already and its read went past `after`, `catchUpTo` is where the hub's read
    /// began for this viewer: the entries in (`after`, `catchUpTo`] are the caller's to read.
    func subscribe(messageID: Int64, after: String) -> (viewer: TurnStreamViewer, catchUpTo: String?) {
        let viewer = TurnStreamViewer(hub: self, messageID: messageID, bufferLimit: settings.viewerBufferLimit)
        let (catchUp, wake): (String?, Tier?) = state.withLock { state in
            if var turn = state.turns[messageID] {
                turn.viewers[ObjectIdentifier(viewer)] = viewer
                let cursor = turn.cursor
                state.turns[messageID] = turn
                return (StreamEntryID.isAfter(cursor, after) ? cursor : nil, nil)
            }
            // A new turn starts with the hot reader: its first read should not wait on the
            // cold reader's long key list.
            var turn = Turn(cursor: after, tier: .hot, lastEvent: .now)
            turn.viewers[ObjectIdentifier(viewer)] = viewer
            state.turns[messageID] = turn
            state.members[Tier.hot.rawValue].insert(messageID)
            return (nil, Self.needsWake(&state, .hot))
        }
        if let wake { self.wake(wake) }
        return (viewer, catchUp)
    }

    /// Forgets a viewer (its response ended, or it was cut off); a turn without viewers is no
    /// longer read.
    func unsubscribe(_ viewer: TurnStreamViewer) {
        state.withLock { state in
            guard var turn = state.turns[viewer.messageID] else { return }
            turn.viewers[ObjectIdentifier(viewer)] = nil
            if turn.viewers.isEmpty {
                state.remove(viewer.messageID)
            } else {
                state.turns[viewer.messageID] = turn
            }
        }
    }

    // MARK: readers

    /// Marks `tier`'s reader as needing a new look at its keys; answers the tier when a wake
    /// entry (or a start) is needed, nil when one is on its way already.
    private static func needsWake(_ state: inout State, _ tier: Tier) -> Tier? {
        if state.readers[tier.rawValue].wakePending { return nil }
        state.readers[tier.rawValue].wakePending = true
        return tier
    }

    /// Starts `tier`'s reader if it is not running, else wakes it with an entry on its wake stream.
    private func wake(_ tier: Tier) {
        let start = state.withLock { state -> Bool in
            if state.readers[tier.rawValue].running { return false }
            state.readers[tier.rawValue].running = true
            return true
        }
        if start {
            Task { await self.run(tier) }
            return
        }
        let key = redis.key(wakeKey(tier))
        let redis = self.redis
        let logger = self.logger
        Task {
            do {
                _ = try await redis.pipeline([
                    RedisClient.xaddCommand(key, fields: [("w", "1")], maxLength: .approximately(16)),
                    RedisCommand("PEXPIRE", key, 600_000),
                ])
            } catch {
                // The reader sees the change at the end of its BLOCK anyway.
                logger.debug("sse reader wake failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// One reader: XREAD over its turns and its wake stream, deliver, repeat; ends when it has
    /// no turns left.
    private func run(_ tier: Tier) async {
        var failures = 0
        let wakeKey = self.wakeKey(tier)
        while true {
            var wakeCold: Tier?
            // Only the cursors are taken under the lock (the hot reader's deliveries wait on it);
            // the keys, thousands for the cold reader, are spelled out after.
            let taken: (wakeCursor: String, cursors: [(id: Int64, cursor: String)])? = state.withLock { state in
                if tier == .hot, Self.demoteIdle(&state, hotIdle: settings.hotIdle) { wakeCold = Self.needsWake(&state, .cold) }
                let members = state.members[tier.rawValue]
                if members.isEmpty {
                    state.readers[tier.rawValue].running = false
                    state.readers[tier.rawValue].wakePending = false
                    return nil
                }
                state.readers[tier.rawValue].wakePending = false
                var cursors: [(id: Int64, cursor: String)] = []
                cursors.reserveCapacity(members.count)
                for id in members {
                    if let turn = state.turns[id] { cursors.append((id, turn.cursor)) }
                }
                return (state.readers[tier.rawValue].wakeCursor, cursors)
            }
            if let wakeCold { wake(wakeCold) }
            guard let taken else { return }
            var keys: [(key: String, id: String)] = [(wakeKey, taken.wakeCursor)]
            var turns: [String: (id: Int64, readFrom: String)] = [:]
            keys.reserveCapacity(taken.cursors.count + 1)
            turns.reserveCapacity(taken.cursors.count)
            for (id, cursor) in taken.cursors {
                let key = TurnKeys.stream(id)
                keys.append((key, cursor))
                turns[key] = (id, cursor)
            }
            let batches: [StreamBatch]
            do {
                batches = try await redis.xread(
                    streams: keys, count: settings.readCount, block: tier == .hot ? settings.block : settings.coldBlock)
                if failures > 0 {
                    logger.info("sse \(tier.name) reader reading again", metadata: ["failures": "\(failures)"])
                }
                failures = 0
            } catch {
                // Nobody left to read for (the streams ended while the read was failing): stop quietly.
                if state.withLock({ $0.members[tier.rawValue].isEmpty }) { continue }
                failures += 1
                if failures == 1 || failures % 30 == 0 {
                    logger.warning("sse \(tier.name) reader cannot read; retrying", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: min(.milliseconds(50) * (1 << min(failures, 6)), .seconds(2)))
                continue
            }
            deliver(batches, tier: tier, wakeKey: wakeKey, turns: turns)
        }
    }

    /// Hands what a reader read to the viewers, in order (under the lock, so a turn moving from
    /// one reader to the other cannot overtake itself).
    /// `turns` are the turns read, by key, each with where its read began: a batch read from
    /// beyond what its turn has delivered (the turn was dropped and followed anew from an earlier
    /// id while the read was under way) would leave a gap, so it is left for the next read from
    /// the turn's cursor.
    private func deliver(_ batches: [StreamBatch], tier: Tier, wakeKey: String, turns: [String: (id: Int64, readFrom: String)]) {
        let wakeHot: Tier? = state.withLock { state in
            var wakeHot: Tier?
            let now = ContinuousClock.now
            for batch in batches {
                guard let last = batch.entries.last else { continue }
                if batch.stream == wakeKey {
                    state.readers[tier.rawValue].wakeCursor = last.id
                    continue
                }
                guard let (messageID, start) = turns[batch.stream], var turn = state.turns[messageID] else { continue }
                if StreamEntryID.isAfter(start, turn.cursor) { continue }
                // A newer cursor may have been set meanwhile only by this same reader; never go back.
                guard StreamEntryID.isAfter(last.id, turn.cursor) else { continue }
                let from = turn.cursor
                let fresh = batch.entries.filter { StreamEntryID.isAfter($0.id, from) }.map(TurnStreamEntry.init)
                turn.cursor = last.id
                turn.lastEvent = now
                for (key, viewer) in turn.viewers where !viewer.push(fresh) {
                    turn.viewers[key] = nil  // cut off: it resumes with Last-Event-ID
                }
                state.turns[messageID] = turn
                if turn.viewers.isEmpty {
                    state.remove(messageID)
                } else if turn.tier == .cold {
                    state.move(messageID, to: .hot)
                    if let tier = Self.needsWake(&state, .hot) { wakeHot = tier }
                }
            }
            return wakeHot
        }
        if let wakeHot { wake(wakeHot) }
    }

    /// Moves hot turns without an event for `hotIdle` to the cold reader; true when any moved.
    private static func demoteIdle(_ state: inout State, hotIdle: Duration) -> Bool {
        let now = ContinuousClock.now
        // At most four looks a second: a busy hot reader cycles far more often than that.
        guard now - state.lastDemotion >= .milliseconds(250) else { return false }
        state.lastDemotion = now
        let cutoff = now - hotIdle
        let idle = state.members[Tier.hot.rawValue].filter { state.turns[$0].map { $0.lastEvent < cutoff } ?? false }
        for id in idle { state.move(id, to: .cold) }
        return !idle.isEmpty
    }
}

/// One open SSE stream's place in the hub: the entries read for it and not yet taken by its
/// response, at most about `bufferLimit` of them. A viewer is read in one of two ways: pulled
/// (`next(timeout:)`, a task waiting per stream) or pushed (`attach`: every delivery is handed to
/// a sink as soon as it is read, for a stream served from a channel handler, which bounds its own
/// backlog).
final class TurnStreamViewer: Sendable {
    enum Next: Sendable {
        /// Entries in stream order (some may be at or before the caller's cursor: skip those).
        case entries([TurnStreamEntry])
        /// Nothing arrived within the timeout.
        case idle
        /// The viewer fell `bufferLimit` entries behind and was dropped from the hub.
        case cutOff
        case cancelled
    }

    private struct State {
        var queue: [TurnStreamEntry] = []
        var cutOff = false
        var waiter: CheckedContinuation<Next, Never>?
        var timer: Scheduled<Void>?
        var wait = 0
        /// Push mode: where deliveries go (set by `attach`, cleared by `cancel`).
        var sink: (@Sendable ([TurnStreamEntry]) -> Void)?
    }

    let messageID: Int64
    private let hub: TurnStreamHub
    private let bufferLimit: Int
    private let state = Mutex(State())

    init(hub: TurnStreamHub, messageID: Int64, bufferLimit: Int) {
        self.hub = hub
        self.messageID = messageID
        self.bufferLimit = bufferLimit
    }

    /// Called by the hub with the entries just read; false when the viewer is (now) cut off.
    func push(_ entries: [TurnStreamEntry]) -> Bool {
        if entries.isEmpty { return true }
        let (accepted, sink) = state.withLock { state -> (Bool, (@Sendable ([TurnStreamEntry]) -> Void)?) in
            if state.cutOff { return (false, nil) }
            if let sink = state.sink { return (true, sink) }
            return (Self.enqueue(&state, entries, bufferLimit: bufferLimit), nil)
        }
        // Called under the hub's lock, in delivery order; the sink only hands the entries over.
        sink?(entries)
        return accepted
    }

    /// Pull mode: queues `entries` for `next`, or cuts the viewer off when its queue is full.
    private static func enqueue(_ state: inout State, _ entries: [TurnStreamEntry], bufferLimit: Int) -> Bool {
        if state.queue.count >= bufferLimit {
            state.cutOff = true
            state.queue = []
            Self.resume(&state, .cutOff)
            return false
        }
        state.queue += entries
        if state.waiter != nil {
            let queued = state.queue
            state.queue = []
            Self.resume(&state, .entries(queued))
        }
        return true
    }

    /// Switches to push mode: every later delivery goes to `sink` as it is read (on the hub's
    /// reader, in order; the sink must not block). Answers what was queued before (or `cutOff`).
    func attach(_ sink: @escaping @Sendable ([TurnStreamEntry]) -> Void) -> Next {
        state.withLock { state in
            if state.cutOff { return .cutOff }
            state.sink = sink
            defer { state.queue = [] }
            return .entries(state.queue)
        }
    }

    /// The entries that arrived since the last call, waiting up to `timeout` for some.
    func next(timeout: Duration) async -> Next {
        if Task.isCancelled { return .cancelled }
        let (seconds, attoseconds) = timeout.components
        let amount = TimeAmount.nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Next, Never>) in
                let now: Next? = state.withLock { state in
                    if state.cutOff { return .cutOff }
                    if !state.queue.isEmpty {
                        defer { state.queue = [] }
                        return .entries(state.queue)
                    }
                    state.wait += 1
                    let wait = state.wait
                    state.waiter = continuation
                    state.timer = MultiThreadedEventLoopGroup.singleton.any().scheduleTask(in: amount) { [self] in
                        self.state.withLock { state in
                            if state.wait == wait { Self.resume(&state, .idle) }
                        }
                    }
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            state.withLock { Self.resume(&$0, .cancelled) }
        }
    }

    /// Leaves the hub (the response ended).
    func cancel() {
        hub.unsubscribe(self)
        state.withLock { $0.sink = nil }
    }

    private static func resume(_ state: inout State, _ next: Next) {
        guard let waiter = state.waiter else { return }
        state.waiter = nil
        state.timer?.cancel()
        state.timer = nil
        waiter.resume(returning: next)
    }
}
