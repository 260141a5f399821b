import SwitchboardConfig

/// A role this process plays. `serve` plays all of them.
public enum Role: String, Sendable, CaseIterable {
    case api, worker, gateway
}

/// Assembly of the roles; filled in as the Redis, storage, queue and gateway modules land.
public enum Launcher {
    struct NotAssembled: Error {}
    public static func run(roles: Set<Role>, settings: Settings) async throws { throw NotAssembled() }
    public static func migrate(settings: Settings) async throws -> [Int] { throw NotAssembled() }
    public static func mintToken(settings: Settings, user: String, channel: String?, ttl: Int?) throws -> String { throw NotAssembled() }
    public static func failedJobs(settings: Settings, limit: Int) async throws -> [String] { throw NotAssembled() }
    public static func retryFailedJobs(settings: Settings, id: String?) async throws -> Int { throw NotAssembled() }
    public static func purgeFailedJobs(settings: Settings) async throws -> Int { throw NotAssembled() }
}
