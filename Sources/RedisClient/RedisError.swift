/// Every failure the client reports.
public enum RedisError: Error, Sendable, Equatable {
    /// An `-ERR` reply; the message is kept verbatim (e.g. "BUSYGROUP ...", "NOSCRIPT ...").
    case server(String)
    /// The connection was lost while the command was in flight; it may or may not have run.
    case connectionClosed
    /// Redis could not be reached (after the backoff attempts within the connect timeout).
    case unavailable(String)
    /// The server sent something the client cannot make sense of.
    case protocolError(String)
    /// No reply within the configured command timeout.
    case timeout
    /// The Redis URL is malformed; the message names what is wrong.
    case invalidURL(String)
}

extension RedisError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .server(let message): return "Redis error: \(message)"
        case .connectionClosed: return "Redis connection closed while the command was in flight"
        case .unavailable(let reason): return "Redis unavailable: \(reason)"
        case .protocolError(let reason): return "Redis protocol error: \(reason)"
        case .timeout: return "Redis command timed out"
        case .invalidURL(let reason): return "invalid Redis URL: \(reason)"
        }
    }
}

extension RedisError {
    /// The error code of a server error (the first word, e.g. "NOSCRIPT", "BUSYGROUP", "WRONGTYPE").
    public var serverErrorCode: String? {
        guard case .server(let message) = self else { return nil }
        return message.split(separator: " ", maxSplits: 1).first.map(String.init)
    }
}
