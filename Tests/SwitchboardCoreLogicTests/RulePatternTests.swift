import Foundation
import SwitchboardCore
import Testing

/// Routing rule patterns: what matches, what the api refuses, and that no pattern can make
/// matching take longer than linear time in the message.
@Suite("Rule patterns")
struct RulePatternTests {
    static func matches(_ kind: RoutingRule.Kind, _ pattern: String, _ text: String) throws -> Bool {
        try RulePattern(kind: kind, pattern: pattern).matches(original: text, folded: RulePattern.fold(text))
    }

    @Test func keywordsMatchWholeWordsIgnoringCaseAndAccents() throws {
        #expect(try Self.matches(.keyword, "refund", "I want a REFUND now"))
        #expect(try Self.matches(.keyword, "refund", "refund"))
        #expect(try Self.matches(.keyword, "café", "un CAFE, s'il vous plaît"))
        #expect(try !Self.matches(.keyword, "refund", "refunds are late"))
        #expect(try !Self.matches(.keyword, "refund", "nonrefund"))
        #expect(try Self.matches(.keyword, "c++", "I write C++ daily"), "punctuation in a keyword is literal")
        #expect(try !Self.matches(.keyword, "a.b", "axb"))
    }

    @Test func regexesMatchAnywhereIgnoringCase() throws {
        #expect(try Self.matches(.regex, #"\bINV-\d{4,}\b"#, "invoice inv-20231 is wrong"))
        #expect(try !Self.matches(.regex, #"\bINV-\d{4,}\b"#, "INV-12"))
        #expect(try Self.matches(.regex, "ünïcödé", "ÜNÏCÖDÉ text"))
    }

    @Test func patternsTheEngineCannotRunAreRefusedWithAReason() {
        #expect(RulePattern.problem(kind: .regex, pattern: "([unclosed")?.contains("RE2") == true)
        #expect(RulePattern.problem(kind: .regex, pattern: #"(\w+)\s\1"#) != nil, "back-references need backtracking")
        #expect(RulePattern.problem(kind: .regex, pattern: "(?<!x)y") != nil, "look-behind needs backtracking")
        #expect(RulePattern.problem(kind: .regex, pattern: "a{1000}{1000}") != nil, "a program too large for the memory bound")
        #expect(RulePattern.problem(kind: .keyword, pattern: "   ") == "must contain a word")
        #expect(RulePattern.problem(kind: .regex, pattern: #"\bINV-\d+"#) == nil)
    }

    /// With a backtracking engine `(a+)+$` against 40 `a`s and a `!` takes about 2^40 steps (hours);
    /// RE2 answers at once, so this test finishing at all (under the suite's watchdog) is the check.
    @Test func aCatastrophicPatternRunsInLinearTime() throws {
        let pattern = try RulePattern(kind: .regex, pattern: "(a+)+$")
        let hostile = String(repeating: "a", count: 40) + "!"
        #expect(!pattern.matches(original: hostile, folded: hostile))
        let long = String(repeating: "a", count: 100_000) + "!"
        #expect(!pattern.matches(original: long, folded: long))
        #expect(pattern.matches(original: "aaa", folded: "aaa"))
    }
}
