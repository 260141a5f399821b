/// Presence in memory, for one process.
import Foundation
import Synchronization

/// Presence of this node only.
final class MemoryPresenceManager: PresenceManager {
    private let channels = Mutex<[String: [String: ClientInfo]]>([:])

    init() {}

    func add(channel: String, info: ClientInfo, ttl: Int) async throws {
        channels.withLock { $0[channel, default: [:]][info.client] = info }
    }

    func remove(channel: String, clientID: String) async throws {
        channels.withLock { channels in
            channels[channel]?[clientID] = nil
            if channels[channel]?.isEmpty == true { channels[channel] = nil }
        }
    }

    func presence(channel: String) async throws -> [String: ClientInfo] {
        channels.withLock { $0[channel] ?? [:] }
    }
}
