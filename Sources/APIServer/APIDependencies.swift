import Channels
import Files
import Queue
import RedisClient
import Storage

/// Everything the api role needs; all of it shared through Redis and MariaDB, so any number of
/// api nodes behave as one.
public struct APIDependencies: Sendable {
    public var redis: RedisClient
    public var stores: Stores
    public var jobs: any JobProducer
    public var settings: APISettings
    public var limits: RateLimitSettings
    public var healthChecks: [HealthCheck]
    /// Seals and opens the secrets of channel connections.
    public var secrets: SecretBox
    /// Live support's publisher, tokens and limits (nil: its routes answer 503).
    public var liveSupport: LiveSupport?
    /// Sign-in sessions and the web pages.
    public var web: WebSettings = WebSettings()
    /// Uploads and search (`/api/v1/files`, `/api/v1/search`).
    public var files = FileServices()

    public init(
        redis: RedisClient, stores: Stores, jobs: any JobProducer, settings: APISettings = .init(),
        limits: RateLimitSettings = .init(), healthChecks: [HealthCheck] = [], secrets: SecretBox = .development(),
        liveSupport: LiveSupport? = nil
    ) {
        self.redis = redis
        self.stores = stores
        self.jobs = jobs
        self.settings = settings
        self.limits = limits
        self.healthChecks = healthChecks
        self.secrets = secrets
        self.liveSupport = liveSupport
    }
}

extension APIDependencies {
    /// Where the api's channels hand their messages to the turn path.
    var intake: ChannelIntake {
        ChannelIntake(stores: stores, jobs: jobs, redis: redis, stream: settings.turnStream, quotas: settings.quotas)
    }

    /// Where uploads and channel attachments become files (their extraction queued).
    var fileIntake: FileIntake { FileIntake(stores: stores, jobs: jobs, configuration: files.configuration) }
}
