import Synchronization

/// The messages this api node accepted lately, with their owners. A client usually opens a turn's
/// event stream right after submitting it, often on the same node: the stream then needs no
/// database read to prove the caller owns the message. A message's owner never changes; a node
/// that did not accept the message (or forgot it) asks the database as before.
final class RecentSubmissions: Sendable {
    private struct Entry {
        var ownerID: Int64
        var accepted: ContinuousClock.Instant
    }

    private struct State {
        var owners: [Int64: Entry] = [:]
        /// Insertion order, as a ring filled on demand: once full, the oldest entry is replaced first.
        var ring: [Int64] = []
        var next = 0
    }

    /// How long after acceptance an entry answers (the stream is normally opened within a second).
    let lifetime: Duration
    let capacity: Int
    private let state = Mutex(State())

    /// Costs nothing until used: `PublicAPI` values are also made for their helpers alone.
    init(capacity: Int = 4096, lifetime: Duration = .seconds(60)) {
        self.capacity = max(1, capacity)
        self.lifetime = lifetime
    }

    func accepted(messageID: Int64, ownerID: Int64) {
        let now = ContinuousClock.now
        state.withLock { state in
            if state.ring.count < capacity {
                state.ring.append(messageID)
            } else {
                state.owners[state.ring[state.next]] = nil
                state.ring[state.next] = messageID
                state.next = (state.next + 1) % capacity
            }
            state.owners[messageID] = Entry(ownerID: ownerID, accepted: now)
        }
    }

    /// The owner of `messageID` if this node accepted it within `lifetime`, else nil (unknown here).
    func owner(of messageID: Int64) -> Int64? {
        let now = ContinuousClock.now
        return state.withLock { state in
            guard let entry = state.owners[messageID], now - entry.accepted < lifetime else { return nil }
            return entry.ownerID
        }
    }
}
