/// A failed model call, with a code the pipeline maps to the turn's `error` event.
/// Codes are open-ended (`static let`s) so other providers can add their own.
public struct AIProviderError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public init(stringLiteral value: String) { self.rawValue = value }
        public var description: String { rawValue }

        /// The server could not be reached (refused, reset, DNS, TLS).
        public static let connectionFailed: Code = "provider_unreachable"
        /// No answer, or no bytes of a stream, within the configured time.
        public static let timeout: Code = "provider_timeout"
        /// 429 after every retry.
        public static let rateLimited: Code = "provider_rate_limited"
        /// Any other non-2xx status (after retries for 5xx).
        public static let httpStatus: Code = "provider_http_error"
        /// The server answered something that is not the OpenAI format.
        public static let invalidResponse: Code = "provider_invalid_response"
        /// A JSON answer was asked for and the model's text holds none (or not the expected shape).
        public static let invalidJSON: Code = "provider_invalid_json"
        /// The stream broke off or the server reported an error inside it.
        public static let streamFailed: Code = "provider_stream_failed"
        /// The configuration cannot work (bad base URL, no model for a slot).
        public static let misconfigured: Code = "provider_misconfigured"
    }

    public var code: Code
    public var message: String
    /// The HTTP status of the last attempt, when there was one.
    public var status: Int?
    /// How many attempts were made (1 without retries).
    public var attempts: Int
    /// The wait a 429 or 503 asked for (`Retry-After`).
    public var retryAfter: Duration?

    public init(_ code: Code, _ message: String, status: Int? = nil, attempts: Int = 1) {
        self.code = code
        self.message = message
        self.status = status
        self.attempts = attempts
    }

    public var description: String {
        var text = "\(code.rawValue): \(message)"
        if let status { text += " (HTTP \(status))" }
        if attempts > 1 { text += " after \(attempts) attempts" }
        return text
    }

    /// Whether trying again may help: the server was unreachable, busy or failing.
    public var isRetryable: Bool {
        switch code {
        case .connectionFailed, .rateLimited: return true
        case .httpStatus: return status.map { $0 >= 500 || $0 == 408 } ?? false
        default: return false
        }
    }
}
