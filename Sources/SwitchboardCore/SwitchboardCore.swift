/// SwitchboardCore owns what every other Switchboard module shares: the domain records
/// (`Models.swift`), the error vocabulary that the edges map to HTTP/JSON, identifiers and the
/// product version. It has no I/O and no dependency but swift-log.

/// The released version, printed by `switchboard version` and reported by `/healthz`.
public enum SwitchboardVersion {
    public static let current = "0.1.0"
}

/// An error a user can act on: a stable machine-readable `code`, the HTTP status it maps to at
/// the edge, and a human message. Codes are open-ended (`static let`s) so modules can add their own.
public struct SwitchboardError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, ExpressibleByStringLiteral {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public init(stringLiteral value: String) { self.rawValue = value }

        public static let badRequest: Code = "bad_request"
        /// Bytes the HTTP parser cannot read (400), answered before any route.
        public static let malformedRequest: Code = "malformed_request"
        public static let invalidField: Code = "invalid_field"
        public static let unauthorized: Code = "unauthorized"
        public static let forbidden: Code = "forbidden"
        public static let notFound: Code = "not_found"
        public static let methodNotAllowed: Code = "method_not_allowed"
        public static let conflict: Code = "conflict"
        public static let payloadTooLarge: Code = "payload_too_large"
        public static let unprocessable: Code = "unprocessable"
        public static let rateLimited: Code = "rate_limited"
        /// A count the caller may not exceed (rules per user, …) is reached.
        public static let limitExceeded: Code = "limit_exceeded"
        /// The user has used up a quota (messages a day, provider tokens a month).
        public static let quotaExceeded: Code = "quota_exceeded"
        /// An upload with no bytes (400).
        public static let emptyFile: Code = "empty_file"
        /// An upload whose bytes are none of the documents Switchboard reads (422), or that is not multipart (415).
        public static let unsupportedFile: Code = "unsupported_file"
        public static let internalError: Code = "internal_error"
        public static let unavailable: Code = "unavailable"
        /// A live-support session was closed: nothing more can be sent in it.
        public static let sessionClosed: Code = "session_closed"
        /// A live-support request from an `Origin` the widget does not allow.
        public static let originNotAllowed: Code = "origin_not_allowed"
    }

    public var code: Code
    public var status: Int
    public var message: String

    public init(_ code: Code, status: Int, _ message: String) {
        self.code = code
        self.status = status
        self.message = message
    }

    public var description: String { "\(status) \(code.rawValue): \(message)" }

    public static func notFound(_ message: String = "not found") -> Self { .init(.notFound, status: 404, message) }
    public static func badRequest(_ message: String) -> Self { .init(.badRequest, status: 400, message) }
    public static func invalidField(_ field: String, _ reason: String) -> Self {
        .init(.invalidField, status: 400, "\(field): \(reason)")
    }
    public static func unavailable(_ message: String) -> Self { .init(.unavailable, status: 503, message) }
}
