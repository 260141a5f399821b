/// The presence abstraction: the `PresenceManager` protocol (who is subscribed to a channel, across nodes).

/// Who is subscribed to a channel, across all nodes; entries expire unless refreshed.
protocol PresenceManager: Sendable {
    func add(channel: String, info: ClientInfo, ttl: Int) async throws
    func remove(channel: String, clientID: String) async throws
    func presence(channel: String) async throws -> [String: ClientInfo]
    func stats(channel: String) async throws -> (numClients: Int, numUsers: Int)
}

extension PresenceManager {
    func stats(channel: String) async throws -> (numClients: Int, numUsers: Int) {
        let entries = try await presence(channel: channel)
        return (entries.count, Set(entries.values.map(\.user)).count)
    }
}
