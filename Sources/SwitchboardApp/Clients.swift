/// The clients every role and command builds from `Settings`: Redis, MariaDB, the api's rate
/// limits, and the box that seals channel secrets.
import APIServer
import Channels
import Logging
import RedisClient
import Storage
import SwitchboardConfig
import SwitchboardCore

enum Clients {
    static func rateLimits(_ limits: Settings.Limits) -> RateLimitSettings {
        func rule(_ perMinute: Int, _ burst: Int) -> RateLimitRule? {
            perMinute > 0 ? RateLimitRule(limit: perMinute, period: .seconds(60), burst: burst) : nil
        }
        return RateLimitSettings(
            perUser: rule(limits.perUserPerMinute, limits.perUserBurst),
            perIP: rule(limits.perIPPerMinute, limits.perIPBurst),
            trustedProxies: limits.trustedProxies
        )
    }

    static func redis(settings: Settings, logger: Logger) throws -> RedisClient {
        var configuration: RedisConfiguration
        do {
            configuration = try RedisConfiguration(url: settings.redis.url)
        } catch {
            throw ConfigError(key: "redis.url", "\(error)")
        }
        if let prefix = settings.redis.keyPrefix { configuration.keyPrefix = prefix }
        configuration.poolSize = settings.redis.poolSize
        return RedisClient(configuration: configuration, logger: logger)
    }

    static func database(settings: Settings, logger: Logger) async throws -> Database {
        var configuration: DatabaseConfiguration
        do {
            configuration = try DatabaseConfiguration(url: settings.database.url)
        } catch {
            throw ConfigError(key: "database.url", "\(error)")
        }
        configuration.poolSize = settings.database.poolSize
        return try await Database.connect(configuration, logger: logger)
    }

    /// What seals channel secrets: the configured key, or in development the fixed public one
    /// (production has refused to start without a key already).
    static func secrets(settings: Settings, logger: Logger) -> SecretBox {
        if let key = settings.secretsKey { return SecretBox(key: key) }
        logger.warning("secrets.key is not set: channel secrets are sealed with the public development key (set SB_SECRETS_KEY)")
        return .development()
    }

    /// The configured default quotas (0 in the settings: no limit).
    static func quotas(_ settings: Settings) -> QuotaLimits {
        QuotaLimits(
            messagesPerDay: settings.quotaMessagesPerDay > 0 ? settings.quotaMessagesPerDay : nil,
            tokensPerMonth: settings.quotaTokensPerMonth > 0 ? settings.quotaTokensPerMonth : nil)
    }

    static func email(_ settings: Settings) -> EmailChannelSettings {
        EmailChannelSettings(
            maxMessageBytes: settings.emailMaxMessageBytes, maxAttachmentBytes: settings.emailMaxAttachmentBytes,
            messageIDDomain: settings.emailMessageIDDomain,
            caFile: settings.emailCAFile, imapPollSeconds: settings.emailIMAPPollSeconds)
    }
}
