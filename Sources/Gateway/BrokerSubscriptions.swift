/// Reference counting of this node's broker channel subscriptions.
import Synchronization

/// Reference-counts this node's interest in broker channels: the first local subscriber
/// subscribes in the broker, the last one leaving unsubscribes. Operations on one channel run in
/// order, so a quick leave-and-rejoin cannot end unsubscribed.
final class BrokerSubscriptions: Sendable {
    private struct Entry {
        var count: Int
        var tail: Task<Void, any Error>
    }

    private let broker: any Broker
    private let entries = Mutex<[String: Entry]>([:])

    init(broker: any Broker) {
        self.broker = broker
    }

    func acquire(_ channel: String) async throws {
        let broker = self.broker
        let task = entries.withLock { entries -> Task<Void, any Error> in
            if var entry = entries[channel] {
                entry.count += 1
                if entry.count == 1 {
                    let previous = entry.tail
                    entry.tail = Task {
                        _ = await previous.result
                        try await broker.subscribe(channel)
                    }
                }
                entries[channel] = entry
                return entry.tail
            }
            let task = Task { try await broker.subscribe(channel) }
            entries[channel] = Entry(count: 1, tail: task)
            return task
        }
        do {
            try await task.value
        } catch {
            await release(channel)
            throw error
        }
    }

    func release(_ channel: String) async {
        let broker = self.broker
        let task = entries.withLock { entries -> Task<Void, any Error>? in
            guard var entry = entries[channel] else { return nil }
            entry.count -= 1
            guard entry.count <= 0 else {
                entries[channel] = entry
                return nil
            }
            entry.count = 0
            let previous = entry.tail
            let task = Task {
                _ = await previous.result
                try await broker.unsubscribe(channel)
            }
            entry.tail = task
            entries[channel] = entry
            return task
        }
        guard let task else { return }
        _ = await task.result
        entries.withLock { entries in
            if let entry = entries[channel], entry.count == 0, entry.tail == task { entries[channel] = nil }
        }
    }
}
