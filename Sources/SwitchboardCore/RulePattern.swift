/// How a routing rule's pattern matches a message: the one definition that the api validates a
/// new rule against and every worker's classifier matches with, so a rule the api accepts is a
/// rule the workers can run. Patterns run on RE2 (`CRE2`), whose matching time is linear in the
/// text whatever the pattern: a rule like `(a+)+$` cannot stall the classifier that every tenant
/// on a worker shares.
import CRE2
import Foundation

public final class RulePattern: Sendable {
    public let kind: RoutingRule.Kind
    // RE2 objects are immutable once compiled and safe to match from any thread.
    private nonisolated(unsafe) let regex: OpaquePointer

    /// The most memory one compiled pattern may take (RE2 refuses larger programs).
    public static let maximumProgramBytes: Int64 = 1 << 20

    /// Keywords match whole words, ignoring case and accents; regexes match anywhere, ignoring
    /// case. Throws `RulePatternError` with the reason for a pattern that cannot match (a keyword
    /// without a word, a regex RE2 does not accept).
    public init(kind: RoutingRule.Kind, pattern: String) throws(RulePatternError) {
        self.kind = kind
        let source: String
        switch kind {
        case .keyword:
            let keyword = Self.fold(pattern).trimmingCharacters(in: .whitespaces)
            guard !keyword.isEmpty else { throw RulePatternError(reason: "must contain a word") }
            source = #"(?:^|[^\pL\pN])"# + Self.quoted(keyword) + #"(?:[^\pL\pN]|$)"#
        case .regex:
            source = pattern
        }
        var error = [CChar](repeating: 0, count: 256)
        let compiled = source.withCString { pointer in
            sb_re2_new(pointer, strlen(pointer), 1, Self.maximumProgramBytes, &error, error.count)
        }
        guard let compiled else {
            let reason = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw RulePatternError(reason: "is not a regular expression RE2 accepts (\(reason))")
        }
        regex = compiled
    }

    deinit { sb_re2_free(regex) }

    /// Why `pattern` cannot be a rule of `kind` (nil when it can): what the API answers before
    /// storing a rule every worker would otherwise skip.
    public static func problem(kind: RoutingRule.Kind, pattern: String) -> String? {
        do {
            _ = try RulePattern(kind: kind, pattern: pattern)
            return nil
        } catch {
            return error.reason
        }
    }

    /// True when the rule matches a message, given as written and folded (`fold`).
    public func matches(original: String, folded: String) -> Bool {
        var text = kind == .keyword ? folded : original
        return text.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) { sb_re2_partial_match(regex, $0.baseAddress, $0.count) == 1 }
        }
    }

    /// The text keywords are matched against: case and accents folded.
    public static func fold(_ text: String) -> String {
        text.folding(options: [.caseInsensitive, .diacriticInsensitive], locale: nil)
    }

    /// `text` as a literal in RE2 syntax: every ASCII character but letters and digits escaped
    /// (bytes beyond ASCII stand for themselves).
    static func quoted(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            if scalar.isASCII && !(CharacterSet.alphanumerics.contains(scalar)) {
                if scalar == "\0" { out += "\\x00"; continue }
                out += "\\"
            }
            out.unicodeScalars.append(scalar)
        }
        return out
    }
}

/// Why a pattern cannot be a rule (said to the API caller, naming the field).
public struct RulePatternError: Error, Sendable, Equatable {
    public var reason: String
}
