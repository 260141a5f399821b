/// Reference counting of this node's broker channel subscriptions.
import Synchronization

/// Reference-counts this node's interest in broker channels: the first local subscriber
/// subscribes in the broker, the last one leaving unsubscribes. Operations on one channel run in
/// order, so a quick leave-and-rejoin cannot end unsubscribed.
///
/// Each channel has a turn: the caller holding it runs its broker call in its own task (on its
/// connection's event loop), and callers arriving meanwhile wait in line. A channel nobody else
/// is changing costs one lock and no task, which is every new connection of a reconnect storm.
final class BrokerSubscriptions: Sendable {
    private struct Entry {
        /// Local subscribers counted in (the broker is subscribed while it is above 0).
        var count = 0
        /// A caller holds the channel's turn.
        var busy = false
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    private let broker: any Broker
    private let entries = Mutex<[String: Entry]>([:])

    init(broker: any Broker) {
        self.broker = broker
    }

    /// Counts a local subscriber in; the first one subscribes in the broker (and is not counted
    /// when that fails).
    func acquire(_ channel: String) async throws {
        await takeTurn(channel)
        let first = entries.withLock { $0[channel]?.count == 0 }
        if first {
            do {
                try await broker.subscribe(channel)
            } catch {
                passTurn(channel)
                throw error
            }
        }
        entries.withLock { $0[channel]?.count += 1 }
        passTurn(channel)
    }

    /// Counts a local subscriber out; the last one unsubscribes in the broker.
    func release(_ channel: String) async {
        await takeTurn(channel)
        let last = entries.withLock { entries -> Bool in
            guard let count = entries[channel]?.count, count > 0 else { return false }
            entries[channel]?.count = count - 1
            return count == 1
        }
        if last {
            // Unsubscribe in a task of its own, so a cancelled caller cannot leave the broker
            // subscribed to a channel nobody here follows.
            let broker = self.broker
            _ = await Task { try await broker.unsubscribe(channel) }.result
        }
        passTurn(channel)
    }

    /// Local subscribers counted in for `channel` (for tests).
    func count(_ channel: String) -> Int {
        entries.withLock { $0[channel]?.count ?? 0 }
    }

    /// Waits until the caller holds `channel`'s turn.
    private func takeTurn(_ channel: String) async {
        let taken = entries.withLock { entries -> Bool in
            if entries[channel, default: Entry()].busy { return false }
            entries[channel, default: Entry()].busy = true
            return true
        }
        if taken { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = entries.withLock { entries -> Bool in
                if entries[channel, default: Entry()].busy {
                    entries[channel]?.waiting.append(continuation)
                    return false
                }
                entries[channel, default: Entry()].busy = true
                return true
            }
            if now { continuation.resume() }
        }
    }

    /// Hands `channel`'s turn to the next caller in line, or frees it (and forgets a channel
    /// without subscribers).
    private func passTurn(_ channel: String) {
        let next = entries.withLock { entries -> CheckedContinuation<Void, Never>? in
            guard var entry = entries[channel] else { return nil }
            if !entry.waiting.isEmpty {
                let next = entry.waiting.removeFirst()
                entries[channel] = entry
                return next  // the turn stays taken, now by `next`
            }
            if entry.count == 0 {
                entries[channel] = nil
            } else {
                entry.busy = false
                entries[channel] = entry
            }
            return nil
        }
        next?.resume()
    }
}
