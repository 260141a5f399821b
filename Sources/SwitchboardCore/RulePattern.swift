/// How a routing rule's pattern matches a message: the one definition that the api validates a
/// new rule against and every worker's classifier matches with, so a rule the api accepts is a
/// rule the workers can run.
import Foundation

public struct RulePattern: Sendable {
    public let kind: RoutingRule.Kind
    let regex: NSRegularExpression

    /// Keywords match whole words, ignoring case and accents; regexes match anywhere, ignoring
    /// case. nil for a pattern that cannot match (a keyword without a word, an invalid regex).
    public init?(kind: RoutingRule.Kind, pattern: String) {
        self.kind = kind
        switch kind {
        case .keyword:
            let keyword = Self.fold(pattern).trimmingCharacters(in: .whitespaces)
            guard !keyword.isEmpty,
                  let regex = try? NSRegularExpression(pattern: "(?<![\\p{L}\\p{N}])" + NSRegularExpression.escapedPattern(for: keyword) + "(?![\\p{L}\\p{N}])")
            else { return nil }
            self.regex = regex
        case .regex:
            guard let regex = try? NSRegularExpression(pattern: pattern, options: [.caseInsensitive]) else { return nil }
            self.regex = regex
        }
    }

    /// Why `pattern` cannot be a rule of `kind` (nil when it can): what the API answers before
    /// storing a rule every worker would otherwise skip.
    public static func problem(kind: RoutingRule.Kind, pattern: String) -> String? {
        guard RulePattern(kind: kind, pattern: pattern) == nil else { return nil }
        return kind == .keyword ? "must contain a word" : "is not a valid regular expression"
    }

    /// True when the rule matches a message, given as written and folded (`fold`).
    public func matches(original: String, folded: String) -> Bool {
        let text = kind == .keyword ? folded : original
        return regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }

    /// The text keywords are matched against: case and accents folded.
    public static func fold(_ text: String) -> String {
        text.folding(options: [.caseInsensitive, .diacriticInsensitive], locale: nil)
    }
}
