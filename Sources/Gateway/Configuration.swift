/// The gateway's configuration (`GatewayConfiguration`, the `gateway:` section of switchboard.yaml) and how
/// durations in it are decoded.
import Foundation

/// Configuration of the realtime gateway (the `gateway:` section of switchboard.yaml).
/// Every key is optional; snake_case names as in Centrifugo.
public struct GatewayConfiguration: Sendable, Codable {
    public var host = "127.0.0.1"
    public var port = 8000
    /// The internal listener (server HTTP API, `/metrics`, `/healthz` with its Redis check):
    /// loopback by default, like Centrifugo's `internal_port`. Never expose it to the public.
    public var internalHost = "127.0.0.1"
    public var internalPort = 8001
    /// HMAC secret for connection and subscription JWTs.
    public var tokenSecret: String?
    /// Still accepted while secrets rotate.
    public var previousTokenSecret: String?
    /// Key for the server HTTP API; without one the API answers 401 to everyone.
    public var apiKey: String?
    /// Origins allowed to open a WebSocket; "*" allows all. Empty: only requests without an
    /// Origin header or with one matching the Host header.
    public var allowedOrigins: [String] = []
    /// Seconds between server pings.
    public var pingInterval = 25
    /// Seconds to wait for the pong before disconnecting with 3012.
    public var pongTimeout = 8
    /// Seconds a new connection has to send its request head (the WebSocket upgrade) before it
    /// is closed, so connections that never finish it do not hold descriptors.
    public var handshakeTimeout = 10
    public var maxMessageSize = 65536
    /// Bytes queued for one client before it is disconnected as slow (3008).
    public var clientQueueMaxSize = 1_048_576
    public var channelMaxLength = 255
    public var clientChannelLimit = 128
    /// Commands per second one client may send on average (0: unlimited); a client that exceeds
    /// it beyond the burst is disconnected with 3013.
    public var clientCommandRate = 100
    /// Commands a client may send at once before the rate applies.
    public var clientCommandBurst = 500
    /// Let clients connect without a token as anonymous users.
    public var allowAnonymousConnectWithoutToken = false
    /// Refuse connection tokens without `exp` (a token that never expires). Switchboard's
    /// assembly turns it on in production unless the section sets it.
    public var requireTokenExpiry = false
    /// Answer `rpc` commands (echoing the data) instead of error 104.
    public var rpc = false
    /// Seconds of grace after a token expires before the client is disconnected.
    public var expiryGrace = 25
    /// Seconds a presence entry lives without being refreshed.
    public var presenceTTL = 60
    /// Seconds a channel's stream meta (epoch and offset) outlives its last publication.
    public var historyMetaTTL = 30 * 24 * 3600
    /// Seconds between checks that positioned subscribers have every publication their channel's
    /// stream holds (one also runs whenever the Redis engine's pub/sub connection comes back);
    /// a subscriber behind is unsubscribed with 2500 so it recovers. 0 turns the periodic check
    /// off. Centrifugo's `client_channel_position_check_delay`, with its default.
    public var channelPositionCheckDelay = 40
    /// Options for channels without a namespace.
    public var channelDefaults = ChannelOptions()
    public var namespaces: [NamespaceConfiguration] = []
    /// Key prefix for the gateway's Redis keys inside the Redis client's own prefix.
    public var redisPrefix: String?
    /// Send what an event loop fans out in one pass through an io_uring instance of its own (one
    /// system call for many sockets) where the kernel allows it; without io_uring (an old kernel,
    /// `kernel.io_uring_disabled`, a seccomp profile that blocks it) each frame gets its own `send`.
    public var fanoutIOUring = true
    /// What serves the public port's sockets: `own`, event loops of the gateway's own (edge-triggered
    /// `epoll`; WebSocket connections and `EventSource` streams stay on them, other requests go on
    /// to NIO), or `nio`, NIO's channels for every connection.
    public var socketLayer = SocketLayer.own

    public enum SocketLayer: String, Codable, Sendable {
        case own, nio
    }

    public init() {}

    enum CodingKeys: String, CodingKey {
        case host, port, rpc, namespaces
        case internalHost = "internal_host"
        case internalPort = "internal_port"
        case tokenSecret = "token_secret"
        case previousTokenSecret = "previous_token_secret"
        case apiKey = "api_key"
        case allowedOrigins = "allowed_origins"
        case pingInterval = "ping_interval"
        case pongTimeout = "pong_timeout"
        case handshakeTimeout = "handshake_timeout"
        case maxMessageSize = "max_message_size"
        case clientQueueMaxSize = "client_queue_max_size"
        case channelMaxLength = "channel_max_length"
        case clientChannelLimit = "client_channel_limit"
        case clientCommandRate = "client_command_rate"
        case clientCommandBurst = "client_command_burst"
        case allowAnonymousConnectWithoutToken = "allow_anonymous_connect_without_token"
        case requireTokenExpiry = "require_token_expiry"
        case expiryGrace = "expiry_grace"
        case presenceTTL = "presence_ttl"
        case historyMetaTTL = "history_meta_ttl"
        case channelPositionCheckDelay = "client_channel_position_check_delay"
        case redisPrefix = "redis_prefix"
        case fanoutIOUring = "fanout_io_uring"
        case socketLayer = "socket_layer"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        host = try container.decodeIfPresent(String.self, forKey: .host) ?? host
        port = try container.decodeIfPresent(Int.self, forKey: .port) ?? port
        internalHost = try container.decodeIfPresent(String.self, forKey: .internalHost) ?? internalHost
        internalPort = try container.decodeIfPresent(Int.self, forKey: .internalPort) ?? internalPort
        tokenSecret = try container.decodeIfPresent(String.self, forKey: .tokenSecret)
        previousTokenSecret = try container.decodeIfPresent(String.self, forKey: .previousTokenSecret)
        apiKey = try container.decodeIfPresent(String.self, forKey: .apiKey)
        if let origins = try? container.decodeIfPresent([String].self, forKey: .allowedOrigins) {
            allowedOrigins = origins
        } else if let origins = try container.decodeIfPresent(String.self, forKey: .allowedOrigins) {
            allowedOrigins = origins.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        pingInterval = try decodeSeconds(container, .pingInterval) ?? pingInterval
        pongTimeout = try decodeSeconds(container, .pongTimeout) ?? pongTimeout
        handshakeTimeout = try decodeSeconds(container, .handshakeTimeout) ?? handshakeTimeout
        maxMessageSize = try container.decodeIfPresent(Int.self, forKey: .maxMessageSize) ?? maxMessageSize
        clientQueueMaxSize = try container.decodeIfPresent(Int.self, forKey: .clientQueueMaxSize) ?? clientQueueMaxSize
        channelMaxLength = try container.decodeIfPresent(Int.self, forKey: .channelMaxLength) ?? channelMaxLength
        clientChannelLimit = try container.decodeIfPresent(Int.self, forKey: .clientChannelLimit) ?? clientChannelLimit
        clientCommandRate = try container.decodeIfPresent(Int.self, forKey: .clientCommandRate) ?? clientCommandRate
        clientCommandBurst = try container.decodeIfPresent(Int.self, forKey: .clientCommandBurst) ?? clientCommandBurst
        allowAnonymousConnectWithoutToken =
            try container.decodeIfPresent(Bool.self, forKey: .allowAnonymousConnectWithoutToken) ?? false
        requireTokenExpiry = try container.decodeIfPresent(Bool.self, forKey: .requireTokenExpiry) ?? false
        rpc = try container.decodeIfPresent(Bool.self, forKey: .rpc) ?? false
        expiryGrace = try decodeSeconds(container, .expiryGrace) ?? expiryGrace
        presenceTTL = try decodeSeconds(container, .presenceTTL) ?? presenceTTL
        historyMetaTTL = try decodeSeconds(container, .historyMetaTTL) ?? historyMetaTTL
        channelPositionCheckDelay = try decodeSeconds(container, .channelPositionCheckDelay) ?? channelPositionCheckDelay
        namespaces = try container.decodeIfPresent([NamespaceConfiguration].self, forKey: .namespaces) ?? []
        redisPrefix = try container.decodeIfPresent(String.self, forKey: .redisPrefix)
        fanoutIOUring = try container.decodeIfPresent(Bool.self, forKey: .fanoutIOUring) ?? fanoutIOUring
        socketLayer = try container.decodeIfPresent(SocketLayer.self, forKey: .socketLayer) ?? socketLayer
        // Top-level namespace options are the defaults for channels without a namespace.
        channelDefaults = try ChannelOptions(from: decoder)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(host, forKey: .host)
        try container.encode(port, forKey: .port)
        try container.encode(internalHost, forKey: .internalHost)
        try container.encode(internalPort, forKey: .internalPort)
        try container.encodeIfPresent(tokenSecret, forKey: .tokenSecret)
        try container.encodeIfPresent(previousTokenSecret, forKey: .previousTokenSecret)
        try container.encodeIfPresent(apiKey, forKey: .apiKey)
        try container.encode(allowedOrigins, forKey: .allowedOrigins)
        try container.encode(pingInterval, forKey: .pingInterval)
        try container.encode(pongTimeout, forKey: .pongTimeout)
        try container.encode(handshakeTimeout, forKey: .handshakeTimeout)
        try container.encode(maxMessageSize, forKey: .maxMessageSize)
        try container.encode(clientQueueMaxSize, forKey: .clientQueueMaxSize)
        try container.encode(channelMaxLength, forKey: .channelMaxLength)
        try container.encode(clientChannelLimit, forKey: .clientChannelLimit)
        try container.encode(clientCommandRate, forKey: .clientCommandRate)
        try container.encode(clientCommandBurst, forKey: .clientCommandBurst)
        try container.encode(allowAnonymousConnectWithoutToken, forKey: .allowAnonymousConnectWithoutToken)
        try container.encode(requireTokenExpiry, forKey: .requireTokenExpiry)
        try container.encode(rpc, forKey: .rpc)
        try container.encode(expiryGrace, forKey: .expiryGrace)
        try container.encode(presenceTTL, forKey: .presenceTTL)
        try container.encode(historyMetaTTL, forKey: .historyMetaTTL)
        try container.encode(channelPositionCheckDelay, forKey: .channelPositionCheckDelay)
        try container.encode(namespaces, forKey: .namespaces)
        try container.encodeIfPresent(redisPrefix, forKey: .redisPrefix)
        try container.encode(fanoutIOUring, forKey: .fanoutIOUring)
        try container.encode(socketLayer, forKey: .socketLayer)
        try channelDefaults.encode(to: encoder)
    }

}

/// Durations may be written as seconds (`600`) or with a unit (`"10m"`, `"30s"`, `"1h"`).
func decodeSeconds<K: CodingKey>(_ container: KeyedDecodingContainer<K>, _ key: K) throws -> Int? {
    if let seconds = try? container.decodeIfPresent(Int.self, forKey: key) { return seconds }
    guard let text = try container.decodeIfPresent(String.self, forKey: key) else { return nil }
    let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
    if let last = text.last, let multiplier = units[last], let value = Int(text.dropLast()) {
        return value * multiplier
    }
    if let value = Int(text) { return value }
    throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "not a duration: \(text)")
}
