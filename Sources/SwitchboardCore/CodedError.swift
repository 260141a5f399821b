/// A stable, machine-readable error code of one kind of failure (`Kind`, a marker type): clients
/// and logs match on the string, and the type keeps one kind's codes apart from another's.
/// Codes are added in constrained extensions (`extension ErrorCode where Kind == …`).
public struct ErrorCode<Kind>: RawRepresentable, Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }
}

/// A failure with a code from `ErrorCode<Kind>` and a message for people, e.g.
/// `ExtractionError` (a file without text) or `PipelineError` (a turn the user sees fail).
public struct CodedError<Kind>: Error, Sendable, Hashable, CustomStringConvertible {
    public typealias Code = ErrorCode<Kind>

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
