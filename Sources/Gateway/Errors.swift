/// The catalogue of protocol errors answered in replies (`{code, message, temporary}`), after centrifuge's errors.go.
import SwitchboardCore

/// A protocol error answered in a reply: `{code, message, temporary}` (codes of Centrifugo's client protocol).
public struct GatewayError: Error, Sendable, Hashable {
    public var code: Int
    public var message: String
    public var temporary: Bool

    public init(code: Int, message: String, temporary: Bool = false) {
        self.code = code
        self.message = message
        self.temporary = temporary
    }

    public static let `internal` = GatewayError(code: 100, message: "internal server error", temporary: true)
    public static let unauthorized = GatewayError(code: 101, message: "unauthorized")
    public static let unknownChannel = GatewayError(code: 102, message: "unknown channel")
    public static let permissionDenied = GatewayError(code: 103, message: "permission denied")
    public static let methodNotFound = GatewayError(code: 104, message: "method not found")
    public static let alreadySubscribed = GatewayError(code: 105, message: "already subscribed")
    public static let limitExceeded = GatewayError(code: 106, message: "limit exceeded")
    public static let badRequest = GatewayError(code: 107, message: "bad request")
    public static let notAvailable = GatewayError(code: 108, message: "not available")
    public static let tokenExpired = GatewayError(code: 109, message: "token expired")
    public static let expired = GatewayError(code: 110, message: "expired")
    public static let tooManyRequests = GatewayError(code: 111, message: "too many requests", temporary: true)
    public static let unrecoverablePosition = GatewayError(code: 112, message: "unrecoverable position")

    func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("code", code)
        writer.field("message", message)
        if temporary { writer.field("temporary", true) }
        writer.endObject()
    }
}
