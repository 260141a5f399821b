import Foundation
import SwitchboardCore

/// Where the process runs. Production refuses placeholder secrets and development defaults.
public enum DeploymentEnvironment: String, Sendable, CaseIterable {
    case development, test, production
}

public enum LogLevelSetting: String, Sendable, CaseIterable {
    case trace, debug, info, notice, warning, error, critical
}

/// Every setting Switchboard reads, typed and validated. `config/switchboard.example.yaml`
/// documents each key; `SB_<SECTION>_<KEY>` overrides it.
public struct Settings: Sendable {
    public struct HTTP: Sendable {
        public var host: String
        public var port: Int
        public var maxBodySize: Int
        /// The api's internal listener (`/metrics`, `/healthz`): loopback by default.
        public var internalHost: String
        public var internalPort: Int
    }

    public struct Redis: Sendable {
        public var url: String
        /// nil: the URL's `prefix` parameter, else `sb:`.
        public var keyPrefix: String?
        public var poolSize: Int
    }

    public struct Database: Sendable {
        public var url: String
        public var poolSize: Int
        public var migrateOnStart: Bool
    }

    public struct Worker: Sendable {
        public var id: String?
        public var queues: [String]
        public var concurrency: Int
        public var jobTimeout: Int
        public var maxRetries: Int
        public var visibilityTimeout: Int
        public var gracePeriod: Int
        public var healthHost: String
        public var healthPort: Int
    }

    /// Rate limits of the public API, in requests per minute with a burst; 0 disables one.
    public struct Limits: Sendable {
        public var perUserPerMinute: Int
        public var perUserBurst: Int
        public var perIPPerMinute: Int
        public var perIPBurst: Int
        /// Proxies of yours in front of the api (0: the peer address is the client).
        public var trustedProxies: Int
    }

    /// Where the api and workers publish live-support events (`realtime.*`), and live support's limits (`live.*`).
    public struct Realtime: Sendable {
        public enum Publisher: String, Sendable, CaseIterable {
            /// Into the gateway's Redis engine (the same Redis as Switchboard's).
            case engine
            /// Through a Centrifugo-compatible HTTP API (`centrifugo_url`, `centrifugo_api_key`).
            case centrifugo
        }
        public var publisher: Publisher
        public var centrifugoURL: String?
        public var centrifugoAPIKey: String?
        /// Seconds a minted gateway token lives.
        public var tokenTTL: Int
        /// The WebSocket URL handed to widgets and operators (default: the gateway's own address).
        public var publicURL: String?
        public var sessionsPerIPPerMinute: Int
        public var messagesPerMinute: Int
        public var messagesPerSession: Int
        public var widgetMessagesPerMinute: Int
    }

    /// The web pages and signing in to them (`web.*`).
    public struct Web: Sendable {
        public var sessionIdleTimeout: Int
        public var sessionLifetime: Int
        public var secureCookie: Bool
        public var loginPerIPPerMinute: Int
        public var loginPerIPBurst: Int
        public var loginPerAccountPerMinute: Int
        public var loginPerAccountBurst: Int
        public var assetsDirectory: String?
        public var connectSources: [String]
        public var bcryptCost: Int
    }

    public var environment: DeploymentEnvironment
    public var logLevel: LogLevelSetting
    public var web: Web
    public var http: HTTP
    public var redis: Redis
    public var database: Database
    public var worker: Worker
    public var limits: Limits
    /// The `ai` section as `SB_AI_*` variables (file values overlaid by the environment), read by
    /// the AI provider's own configuration. Empty: the local model server of `scripts/llm`.
    public var aiEnvironment: [String: String]
    /// The `gateway` section as written, decoded by the gateway module itself.
    public var gatewaySection: JSONValue?
    /// Secrets that the gateway section or the environment supplies; checked in production.
    public var gatewayTokenSecret: String?
    /// The secret tokens were signed with before the last rotation (accepted until they expire).
    public var gatewayPreviousTokenSecret: String?
    public var gatewayAPIKey: String?
    public var gatewayHost: String?
    public var gatewayPort: Int
    /// The gateway's internal listener (server HTTP API, `/metrics`, `/healthz` details): loopback by default.
    public var gatewayInternalHost: String
    public var gatewayInternalPort: Int
    public var gatewayAllowedOrigins: [String]?
    /// The key that seals channel secrets at rest (AES-256-GCM): 32 bytes, base64. Production
    /// refuses to start without one; development uses a fixed, public key and says so.
    public var secretsKey: Data?
    /// Where WhatsApp's Graph API is (a fake one on loopback in tests).
    public var whatsAppGraphURL: String
    /// Generic webhook callbacks may go to loopback, private and link-local addresses
    /// (`channels.allow_private_callbacks`; off by default: such callbacks are refused, against SSRF).
    public var allowPrivateCallbacks: Bool
    /// How long a role keeps retrying Redis and MariaDB at start-up before it gives up (0: no wait).
    public var startupWaitSeconds: Int
    /// Per-user quotas by default (0: none): messages a day, provider tokens a month.
    public var quotaMessagesPerDay: Int
    public var quotaTokensPerMonth: Int
    public var realtime: Realtime
    /// Uploads, chunking, embedding and the search index (`files.*`).
    public var files: FileSettings
    /// The email channel (`channels.email_*`): largest inbound mail and attachment (attachments
    /// are stored under `files.*`), the domain of reply Message-IDs, extra CA certificates for SMTP
    /// and IMAP, seconds between IMAP polls.
    public var emailMaxMessageBytes: Int
    public var emailMaxAttachmentBytes: Int
    public var emailMessageIDDomain: String?
    public var emailCAFile: String?
    public var emailIMAPPollSeconds: Int
    /// OTLP trace export (`tracing.*`), off by default.
    public var tracing: TracingSettings

    /// Conventional names accepted besides `SB_...`.
    public static let aliases: [String: [String]] = [
        "worker.concurrency": ["WORKER_CONCURRENCY"],
        "worker.job_timeout": ["WORKER_JOB_TIMEOUT"],
        "worker.max_retries": ["WORKER_MAX_RETRIES"],
        "environment": ["SB_ENV"],
        "channels.whatsapp_graph_url": ["SB_WHATSAPP_GRAPH_URL"],
        "tracing.endpoint": ["OTEL_EXPORTER_OTLP_ENDPOINT"],
        "tracing.service_name": ["OTEL_SERVICE_NAME"],
    ]

    /// The sections whose every key `Settings` reads; anything else in them is a typo.
    static let knownKeys: Set<String> = [
        "environment", "log_level",
        "http.host", "http.port", "http.max_body_size", "http.internal_host", "http.internal_port",
        "redis.url", "redis.key_prefix", "redis.pool_size",
        "database.url", "database.pool_size", "database.migrate_on_start",
        "worker.id", "worker.queues", "worker.concurrency", "worker.job_timeout", "worker.max_retries",
        "worker.visibility_timeout", "worker.grace_period", "worker.health_host", "worker.health_port",
        "limits.per_user_per_minute", "limits.per_user_burst", "limits.per_ip_per_minute", "limits.per_ip_burst",
        "limits.trusted_proxies",
        "secrets.key",
        "quotas.messages_per_day", "quotas.tokens_per_month",
        "startup.wait_seconds",
        "realtime.publisher", "realtime.centrifugo_url", "realtime.centrifugo_api_key", "realtime.token_ttl", "realtime.public_url",
        "live.sessions_per_ip_per_minute", "live.messages_per_minute", "live.messages_per_session", "live.widget_messages_per_minute",
        "web.session_idle_timeout", "web.session_lifetime", "web.secure_cookie", "web.login_per_ip_per_minute",
        "web.login_per_ip_burst", "web.login_per_account_per_minute", "web.login_per_account_burst", "web.assets_dir",
        "web.connect_sources", "web.bcrypt_cost",
        "files.storage_dir", "files.max_upload_bytes", "files.chunk_characters", "files.chunk_overlap", "files.embed_batch_size",
        "files.cache_owners", "files.cache_megabytes", "files.cache_ttl_seconds", "files.rag_chunks", "files.rag_min_score",
        "tracing.enabled", "tracing.endpoint", "tracing.sample_ratio", "tracing.service_name",
    ]
    /// Sections owned by other modules (decoded there) or by later features.
    static let delegatedSections: Set<String> = ["gateway", "ai", "channels"]

    public static let developmentRedisURL = "redis://127.0.0.1:6380/0"
    public static let developmentDatabaseURL = "mariadb://switchboard:switchboard@127.0.0.1:3307/switchboard"

    public init(source: ConfigSource) throws {
        for key in source.fileKeys.sorted() {
            let section = key.split(separator: ".").first.map(String.init) ?? key
            if Self.knownKeys.contains(key) || Self.delegatedSections.contains(section) { continue }
            throw ConfigError(key: key, "unknown setting (see config/switchboard.example.yaml)")
        }

        environment = try source.oneOf("environment", default: .development)
        logLevel = try source.oneOf("log_level", default: .info)
        http = HTTP(
            host: try source.string("http.host", default: "127.0.0.1"),
            port: try source.int("http.port", default: 8080, range: 0...65535),
            maxBodySize: try source.int("http.max_body_size", default: 256 * 1024, range: 1024...(64 << 20)),
            internalHost: try source.string("http.internal_host", default: "127.0.0.1"),
            internalPort: try source.int("http.internal_port", default: 8081, range: 0...65535)
        )
        redis = Redis(
            url: try source.string("redis.url", default: Self.developmentRedisURL),
            keyPrefix: try source.optionalString("redis.key_prefix"),
            poolSize: try source.int("redis.pool_size", default: 4, range: 1...256)
        )
        database = Database(
            url: try source.string("database.url", default: Self.developmentDatabaseURL),
            poolSize: try source.int("database.pool_size", default: 8, range: 1...256),
            migrateOnStart: try source.bool("database.migrate_on_start", default: true)
        )
        let queues = source.list("worker.queues", default: ["ai", "extract", "index", "delivery"])
        let knownQueues: Set<String> = ["ai", "extract", "index", "delivery"]
        if let unknown = queues.first(where: { !knownQueues.contains($0) }) {
            throw ConfigError(key: "worker.queues", "unknown queue '\(unknown)'; known: ai, extract, index, delivery")
        }
        if queues.isEmpty { throw ConfigError(key: "worker.queues", "at least one queue is required") }
        worker = Worker(
            id: try source.optionalString("worker.id"),
            queues: queues,
            concurrency: try source.int("worker.concurrency", default: 256, range: 1...4096),
            jobTimeout: try source.int("worker.job_timeout", default: 120, range: 1...86_400),
            maxRetries: try source.int("worker.max_retries", default: 5, range: 0...100),
            visibilityTimeout: try source.int("worker.visibility_timeout", default: 30, range: 1...86_400),
            gracePeriod: try source.int("worker.grace_period", default: 60, range: 0...3_600),
            healthHost: try source.string("worker.health_host", default: "127.0.0.1"),
            healthPort: try source.int("worker.health_port", default: 9000, range: 0...65535)
        )
        limits = Limits(
            perUserPerMinute: try source.int("limits.per_user_per_minute", default: 600, range: 0...1_000_000),
            perUserBurst: try source.int("limits.per_user_burst", default: 100, range: 1...1_000_000),
            perIPPerMinute: try source.int("limits.per_ip_per_minute", default: 1_200, range: 0...1_000_000),
            perIPBurst: try source.int("limits.per_ip_burst", default: 200, range: 1...1_000_000),
            trustedProxies: try source.int("limits.trusted_proxies", default: 0, range: 0...16)
        )
        aiEnvironment = source.environmentStyle(section: "ai")
        gatewaySection = source.section("gateway")
        gatewayTokenSecret = try source.optionalString("gateway.token_secret")
        gatewayPreviousTokenSecret = try source.optionalString("gateway.previous_token_secret")
        gatewayAPIKey = try source.optionalString("gateway.api_key")
        gatewayHost = try source.optionalString("gateway.host")
        gatewayPort = try source.int("gateway.port", default: 8000, range: 0...65535)
        gatewayInternalHost = try source.string("gateway.internal_host", default: "127.0.0.1")
        gatewayInternalPort = try source.int("gateway.internal_port", default: 8001, range: 0...65535)
        gatewayAllowedOrigins = source.rawList("gateway.allowed_origins")
        if let encoded = try source.optionalString("secrets.key") {
            guard let key = Data(base64Encoded: encoded), key.count == 32 else {
                throw ConfigError(key: "secrets.key", "must be 32 random bytes in base64 (openssl rand -base64 32)")
            }
            secretsKey = key
        } else {
            secretsKey = nil
        }
        whatsAppGraphURL = try source.string("channels.whatsapp_graph_url", default: "https://graph.facebook.com/v21.0")
        allowPrivateCallbacks = try source.bool("channels.allow_private_callbacks", default: false)
        startupWaitSeconds = try source.int("startup.wait_seconds", default: 60, range: 0...3_600)
        quotaMessagesPerDay = try source.int("quotas.messages_per_day", default: 0, range: 0...10_000_000)
        quotaTokensPerMonth = try source.int("quotas.tokens_per_month", default: 0, range: 0...1_000_000_000_000)
        realtime = Realtime(
            publisher: try source.oneOf("realtime.publisher", default: .engine),
            centrifugoURL: try source.optionalString("realtime.centrifugo_url"),
            centrifugoAPIKey: try source.optionalString("realtime.centrifugo_api_key"),
            tokenTTL: try source.int("realtime.token_ttl", default: 600, range: 10...86_400),
            publicURL: try source.optionalString("realtime.public_url"),
            sessionsPerIPPerMinute: try source.int("live.sessions_per_ip_per_minute", default: 10, range: 0...100_000),
            messagesPerMinute: try source.int("live.messages_per_minute", default: 20, range: 0...100_000),
            messagesPerSession: try source.int("live.messages_per_session", default: 200, range: 0...1_000_000),
            widgetMessagesPerMinute: try source.int("live.widget_messages_per_minute", default: 600, range: 0...1_000_000))
        if realtime.publisher == .centrifugo, realtime.centrifugoURL?.isEmpty ?? true {
            throw ConfigError(key: "realtime.centrifugo_url", "is required when realtime.publisher is centrifugo")
        }
        web = Web(
            sessionIdleTimeout: try source.int("web.session_idle_timeout", default: 1_800, range: 60...604_800),
            sessionLifetime: try source.int("web.session_lifetime", default: 86_400, range: 60...2_592_000),
            secureCookie: try source.bool("web.secure_cookie", default: environment == .production),
            loginPerIPPerMinute: try source.int("web.login_per_ip_per_minute", default: 20, range: 1...100_000),
            loginPerIPBurst: try source.int("web.login_per_ip_burst", default: 10, range: 1...100_000),
            loginPerAccountPerMinute: try source.int("web.login_per_account_per_minute", default: 5, range: 1...100_000),
            loginPerAccountBurst: try source.int("web.login_per_account_burst", default: 5, range: 1...100_000),
            assetsDirectory: try source.optionalString("web.assets_dir"),
            connectSources: source.list("web.connect_sources", default: []),
            bcryptCost: try source.int("web.bcrypt_cost", default: 12, range: 4...16)
        )
        files = try FileSettings(source: source)
        emailMaxMessageBytes = try source.int("channels.email_max_message_bytes", default: 30 << 20, range: 1024...(1 << 30))
        emailMaxAttachmentBytes = try source.int("channels.email_max_attachment_bytes", default: 20 << 20, range: 1...(1 << 30))
        emailMessageIDDomain = try source.optionalString("channels.email_message_id_domain")
        emailCAFile = try source.optionalString("channels.email_ca_file")
        emailIMAPPollSeconds = try source.int("channels.email_imap_poll_seconds", default: 60, range: 5...86_400)
        tracing = try TracingSettings(source: source)

        try validateURLs()
        if environment == .production { try refusePlaceholders() }
    }

    /// Loads the configuration file and the environment (see `ConfigSource.load`).
    public static func load(path: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Settings {
        try Settings(source: ConfigSource.load(path: path, environment: environment, aliases: aliases))
    }

    private func validateURLs() throws {
        let redisSchemes = ["redis", "rediss"]
        guard let redisURL = URLComponents(string: redis.url), let scheme = redisURL.scheme, redisSchemes.contains(scheme), redisURL.host?.isEmpty == false else {
            throw ConfigError(key: "redis.url", "expected redis://[user:password@]host[:port][/db], got '\(redis.url)'")
        }
        guard let databaseURL = URLComponents(string: database.url), let scheme = databaseURL.scheme, ["mariadb", "mysql"].contains(scheme),
            databaseURL.host?.isEmpty == false, databaseURL.path.count > 1
        else {
            throw ConfigError(key: "database.url", "expected mariadb://user:password@host[:port]/database, got '\(Self.redactedURL(database.url))'")
        }
    }

    /// Values that only make sense on a developer's machine. A production deployment must set
    /// its own; starting with one of these would be a working default for an attacker.
    static let placeholderMarkers = ["change-me", "changeme", "placeholder", "secret", "example", "dev-"]

    static func isPlaceholder(_ value: String?) -> Bool {
        guard let value, !value.isEmpty else { return true }
        let lowered = value.lowercased()
        if placeholderMarkers.contains(where: { lowered.contains($0) }) { return true }
        return value.count < 16
    }

    private func refusePlaceholders() throws {
        if Self.isPlaceholder(gatewayTokenSecret) {
            throw ConfigError(key: "gateway.token_secret", "production needs a real secret of at least 16 characters (not a placeholder)")
        }
        if Self.isPlaceholder(gatewayAPIKey) {
            throw ConfigError(key: "gateway.api_key", "production needs a real API key of at least 16 characters (not a placeholder)")
        }
        let developmentPasswords: Set<String> = ["switchboard", "password", "root", "mariadb", ""]
        if let password = URLComponents(string: database.url)?.password,
            developmentPasswords.contains(password.lowercased()) || Self.placeholderMarkers.contains(where: { password.lowercased().contains($0) })
        {
            throw ConfigError(key: "database.url", "production refuses the development or placeholder database password")
        }
        if redis.url == Self.developmentRedisURL || database.url == Self.developmentDatabaseURL {
            let key = redis.url == Self.developmentRedisURL ? "redis.url" : "database.url"
            throw ConfigError(key: key, "production must set this explicitly")
        }
        if secretsKey == nil {
            throw ConfigError(key: "secrets.key", "production needs a key that seals channel secrets (openssl rand -base64 32)")
        }
    }

    /// A URL with its password replaced, safe for logs and errors.
    public static func redactedURL(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "***"
        return components.string ?? url
    }
}
