import Channels
import Foundation
import SwitchboardCore
import Turns

/// Limits of one rate-limited subject: `limit` requests per `period`, of which up to `burst`
/// may come at once (GCRA).
public struct RateLimitRule: Sendable, Equatable {
    public var limit: Int
    public var period: Duration
    public var burst: Int

    public init(limit: Int, period: Duration, burst: Int? = nil) {
        self.limit = max(1, limit)
        self.period = period
        self.burst = max(1, burst ?? limit)
    }
}

/// Rate limits of the public API (config keys `limits.*`). nil disables a limit.
public struct RateLimitSettings: Sendable, Equatable {
    /// Per authenticated user, over every `/api/v1` route.
    public var perUser: RateLimitRule?
    /// Per client IP, checked before authentication (so it also slows key guessing).
    public var perIP: RateLimitRule?
    /// How many proxies of yours stand in front of the api (0: none, `X-Forwarded-For` is
    /// ignored). The client is the address that many hops from the right of `X-Forwarded-For`:
    /// what the outermost of your proxies saw, whatever the client wrote into the header.
    public var trustedProxies: Int

    public init(
        perUser: RateLimitRule? = RateLimitRule(limit: 600, period: .seconds(60), burst: 100),
        perIP: RateLimitRule? = RateLimitRule(limit: 1_200, period: .seconds(60), burst: 200),
        trustedProxies: Int = 0
    ) {
        self.perUser = perUser
        self.perIP = perIP
        self.trustedProxies = trustedProxies
    }

    public static let disabled = RateLimitSettings(perUser: nil, perIP: nil)
}

/// Sizes and timings of the public API.
public struct APISettings: Sendable, Equatable {
    /// Largest request body accepted (413 above).
    public var maxBodyBytes: Int
    /// Longest message text, in characters.
    public var maxMessageCharacters: Int
    /// Longest chat title, in characters.
    public var maxTitleCharacters: Int
    /// Largest page a list returns.
    public var maxPageSize: Int
    public var defaultPageSize: Int
    /// A comment line is sent on an idle SSE stream at least this often (each gap is drawn between
    /// 0.8 and 1 times it, so streams opened together do not beat together).
    public var heartbeatInterval: Duration
    /// How long a stored POST response is replayed for its Idempotency-Key.
    public var idempotencyTTL: Duration
    /// How long a request holds its Idempotency-Key while it runs (a crash frees it after this).
    public var idempotencyLockTTL: Duration
    public var turnStream: TurnStreamSettings
    /// How this node reads turn streams for its open SSE streams (TurnStreamHub).
    public var streamHub: TurnStreamHubSettings
    /// Generic webhook callbacks may name loopback, private and link-local hosts (`channels.allow_private_callbacks`).
    public var allowPrivateCallbacks: Bool
    /// The configured per-user quotas (a user's own in `user_quotas` override them).
    public var quotas: QuotaLimits
    /// The email channel's limits (inbound mail and attachment sizes, where attachments go).
    public var email: EmailChannelSettings

    public init(
        maxBodyBytes: Int = 256 * 1024, maxMessageCharacters: Int = 32_000, maxTitleCharacters: Int = 200,
        maxPageSize: Int = 100, defaultPageSize: Int = 20, heartbeatInterval: Duration = .seconds(15),
        idempotencyTTL: Duration = .seconds(86_400), idempotencyLockTTL: Duration = .seconds(60),
        turnStream: TurnStreamSettings = .init(), streamHub: TurnStreamHubSettings = .init(), allowPrivateCallbacks: Bool = false,
        quotas: QuotaLimits = .unlimited, email: EmailChannelSettings = .init()
    ) {
        self.maxBodyBytes = maxBodyBytes
        self.maxMessageCharacters = maxMessageCharacters
        self.maxTitleCharacters = maxTitleCharacters
        self.maxPageSize = maxPageSize
        self.defaultPageSize = defaultPageSize
        self.heartbeatInterval = heartbeatInterval
        self.idempotencyTTL = idempotencyTTL
        self.idempotencyLockTTL = idempotencyLockTTL
        self.turnStream = turnStream
        self.streamHub = streamHub
        self.allowPrivateCallbacks = allowPrivateCallbacks
        self.quotas = quotas
        self.email = email
    }
}
