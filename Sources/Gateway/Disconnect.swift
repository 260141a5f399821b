/// The catalogue of disconnect codes (WebSocket close codes) and unsubscribe push codes, after centrifuge's disconnect.go.

/// Why a connection is closed: the WebSocket close code and reason the SDKs act on
/// (3000–3499 reconnect, 3500–3999 stop).
public struct Disconnect: Error, Sendable, Hashable {
    public var code: Int
    public var reason: String

    public init(code: Int, reason: String) {
        self.code = code
        self.reason = reason
    }

    public var reconnect: Bool { code < 3500 || code >= 5000 }

    public static let connectionClosed = Disconnect(code: 3000, reason: "connection closed")
    public static let shutdown = Disconnect(code: 3001, reason: "shutdown")
    public static let internalError = Disconnect(code: 3004, reason: "internal server error")
    public static let expired = Disconnect(code: 3005, reason: "connection expired")
    public static let subExpired = Disconnect(code: 3006, reason: "subscription expired")
    public static let slow = Disconnect(code: 3008, reason: "slow")
    public static let writeError = Disconnect(code: 3009, reason: "write error")
    public static let insufficientState = Disconnect(code: 3010, reason: "insufficient state")
    public static let forceReconnect = Disconnect(code: 3011, reason: "force reconnect")
    public static let noPong = Disconnect(code: 3012, reason: "no pong")
    public static let tooManyRequests = Disconnect(code: 3013, reason: "too many requests")
    public static let invalidToken = Disconnect(code: 3500, reason: "invalid token")
    public static let badRequest = Disconnect(code: 3501, reason: "bad request")
    public static let stale = Disconnect(code: 3502, reason: "stale")
    public static let forceNoReconnect = Disconnect(code: 3503, reason: "force disconnect")
    public static let connectionLimit = Disconnect(code: 3504, reason: "connection limit")
    public static let channelLimit = Disconnect(code: 3505, reason: "channel limit")
    public static let permissionDenied = Disconnect(code: 3507, reason: "permission denied")
    public static let messageTooLarge = Disconnect(code: 3501, reason: "message too large")
}

/// Unsubscribe push codes (≥ 2500: the client subscribes again).
enum UnsubscribeCode {
    static let server = 2000
    static let insufficient = 2500
    static let expired = 2501
}
