import AIProviders
import Foundation
import Logging
import RedisClient
import Storage
import SwitchboardCore

/// Sends attachments of a kind to a topic.
public struct AttachmentRule: Sendable, Hashable {
    /// Matched against the start of the MIME type ("application/pdf", "image/").
    public var mimePrefix: String
    public var topic: String

    public init(mimePrefix: String, topic: String) {
        self.mimePrefix = mimePrefix
        self.topic = topic
    }

    /// Documents go to `documents`; anything else attached is still a document question.
    public static let standard = [AttachmentRule(mimePrefix: "", topic: "documents")]
}

public struct ClassifierSettings: Sendable, Hashable {
    /// A message of at most this many words, with no question mark, digits or links, matching no
    /// rule, is small talk answered by plain chat.
    public var fastPathMaxWords: Int = 3
    public var attachmentRules: [AttachmentRule] = AttachmentRule.standard
    public var embeddingThreshold: Float = 0.4
    public var embeddingMargin: Float = 0.1
    public var useEmbeddingRouter = true
    public var useSorter = true

    public init() {}
}

/// The answer the AI sorter must give.
struct SorterAnswer: Decodable {
    var topic: String?
    var language: String?
    var web_search: Bool?
    var multi: Bool?
    /// Asked only of a user with indexed documents.
    var documents: Bool?
}

/// Decides a message's topic, cheapest step first: slash command, attachment rule, fast path,
/// keyword/regex rule, embedding router, AI sorter; a safe fallback when nothing decides.
public struct Classifier: Sendable {
    public var provider: any AIProvider
    public var rules: RoutingRulesCache
    public var router: EmbeddingRouter
    public var settings: ClassifierSettings
    public var logger: Logger

    public init(
        provider: any AIProvider, rules: RoutingRulesCache, redis: RedisClient?, settings: ClassifierSettings = .init(),
        logger: Logger = Logger(label: "switchboard.classifier")
    ) {
        self.provider = provider
        self.rules = rules
        self.router = EmbeddingRouter(provider: provider, redis: redis, threshold: settings.embeddingThreshold, margin: settings.embeddingMargin)
        self.settings = settings
        self.logger = logger
    }

    /// The decision and the tokens spent on it.
    public func classify(_ turn: TurnInput) async throws -> (Classification, TokenUsage?) {
        let text = turn.text
        let guessed = LanguageGuess.guess(text)

        if let command = SlashCommand.parse(text) {
            var language = guessed
            if case .translate(let target, _) = command { language = target }
            return (Classification(topic: command.topic, language: language, source: .slashCommand, command: command), nil)
        }
        if let attachment = turn.attachments.first,
            let rule = settings.attachmentRules.first(where: { attachment.mimeType.lowercased().hasPrefix($0.mimePrefix.lowercased()) })
        {
            return (Classification(topic: rule.topic, language: guessed, source: .attachment, detail: attachment.mimeType), nil)
        }
        let rule = try await rules.match(text, ownerID: turn.userID)
        if rule == nil, Self.isShortPlain(text, maxWords: settings.fastPathMaxWords) {
            // Small talk ("thanks", "good morning") needs no passage of the user's documents.
            return (Classification(topic: Classification.generalTopic, language: guessed, source: .fastPath, needsDocuments: false), nil)
        }
        if let rule {
            return (Classification(topic: rule.topic, language: guessed, source: .rule, detail: rule.rule.pattern), nil)
        }
        let known = try await rules.topics(ownerID: turn.userID)
        var spent: TokenUsage?
        if settings.useEmbeddingRouter {
            do {
                let examples = known.map { TopicExamples(topic: $0.name, examples: $0.examples) }
                let routed = try await router.route(text, topics: examples)
                spent = routed.usage
                if let match = routed.decided {
                    let detail = String(format: "%.3f", match.score)
                    return (Classification(topic: match.topic, language: guessed, source: .embedding, detail: detail), spent)
                }
            } catch let error as AIProviderError {
                logger.notice("embedding router unavailable", metadata: ["error": "\(error)"])
            }
        }
        if settings.useSorter {
            let sorted = await sort(
                text, topics: known.map { ($0.name, $0.description) }, guessedLanguage: guessed, offerDocuments: turn.hasDocuments)
            return (sorted.0, [spent, sorted.1].compactMap { $0 }.reduce(TokenUsage.zero, +))
        }
        return (Classification(topic: Classification.generalTopic, language: guessed, source: .fallback), spent)
    }

    /// The sorter's extra field for a user with indexed documents.
    static let documentsField = #", "documents": true if the answer may be in the user's own uploaded documents (their files, notes, handbooks), false for small talk or general knowledge"#

    /// Short, no question, no digits or links: "hi", "thanks a lot", "good morning".
    static func isShortPlain(_ text: String, maxWords: Int) -> Bool {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.count <= 40 else { return false }
        if trimmed.contains(where: { $0 == "?" || $0.isNumber || $0 == "/" || $0 == "@" }) { return false }
        return trimmed.split(whereSeparator: \.isWhitespace).count <= maxWords
    }

    /// Asks the sort model; validates every field; anything unusable becomes the fallback. With
    /// `offerDocuments` (the user has indexed documents) the same call also says whether the
    /// answer may be in them: no second model call.
    func sort(
        _ text: String, topics: [(name: String, description: String)], guessedLanguage: String?, offerDocuments: Bool = false
    ) async -> (Classification, TokenUsage?) {
        let names = [Classification.generalTopic] + topics.map(\.name).filter { $0 != Classification.generalTopic }
        let list = topics.map { "- \($0.name): \($0.description)" }.joined(separator: "\n")
        let documentsField = offerDocuments ? Self.documentsField : ""
        let request = ChatRequest(
            messages: [
                .system("""
                    Classify the user's message. Answer with JSON only: {"topic": one of [\(names.map { "\"\($0)\"" }.joined(separator: ", "))], \
                    "language": ISO 639-1 code of the message, "web_search": true if current information from the web would help, \
                    "multi": true if the message asks for several different things\(documentsField)}.
                    Topics:
                    - general: anything else
                    \(list)
                    """),
                .user(String(text.prefix(2000))),
            ],
            slot: .sort, temperature: 0, maxTokens: 80, jsonOutput: true
        )
        let fallback = Classification(topic: Classification.generalTopic, language: guessedLanguage, source: .fallback)
        do {
            let (answer, completion) = try await provider.chatJSON(request, as: SorterAnswer.self)
            guard let topic = answer.topic?.trimmingCharacters(in: .whitespaces).lowercased(),
                let known = names.first(where: { $0.lowercased() == topic })
            else {
                var result = fallback
                result.detail = "the sorter named no known topic"
                return (result, completion.usage)
            }
            let language = answer.language.flatMap { LanguageNames.code(of: $0) } ?? guessedLanguage
            return (
                Classification(
                    topic: known, language: language, webSearch: answer.web_search ?? false, multi: answer.multi ?? false, source: .sorter,
                    needsDocuments: offerDocuments ? answer.documents : nil),
                completion.usage
            )
        } catch {
            logger.notice("sorter failed; using the fallback", metadata: ["error": "\(error)"])
            var result = fallback
            result.detail = "the sorter failed"
            return (result, nil)
        }
    }
}
