import Foundation

/// Which classification step decided.
public enum ClassificationSource: String, Sendable, Hashable, Codable, CaseIterable {
    case slashCommand = "slash_command"
    case attachment = "attachment_rule"
    case fastPath = "fast_path"
    case rule = "rule"
    case embedding = "embedding"
    case sorter = "ai_sorter"
    /// Nothing decided (or the sorter answered nonsense): the safe default.
    case fallback = "fallback"
}

/// What the classifier decided about a message.
public struct Classification: Sendable, Hashable {
    public var topic: String
    /// ISO 639-1 code when known.
    public var language: String?
    public var webSearch: Bool
    /// Several intents: the planner builds a task graph.
    public var multi: Bool
    public var source: ClassificationSource
    /// The slash command, when one decided.
    public var command: SlashCommand?
    /// The similarity that decided (embedding router) or the rule's pattern.
    public var detail: String?
    /// Whether answering needs the user's own documents: false for small talk or when the sorter
    /// says so, true when the sorter says so, nil when the step that decided cannot tell (the
    /// planner then looks in them whenever the user has some).
    public var needsDocuments: Bool?

    public init(
        topic: String, language: String? = nil, webSearch: Bool = false, multi: Bool = false, source: ClassificationSource,
        command: SlashCommand? = nil, detail: String? = nil, needsDocuments: Bool? = nil
    ) {
        self.needsDocuments = needsDocuments
        self.topic = topic
        self.language = language
        self.webSearch = webSearch
        self.multi = multi
        self.source = source
        self.command = command
        self.detail = detail
    }

    /// The topic a message gets when nothing more specific applies.
    public static let generalTopic = "general"
}

/// A command at the start of a message.
public enum SlashCommand: Sendable, Hashable {
    case help
    case summarize(text: String)
    case translate(target: String, text: String)
    /// Plain chat, no routing.
    case chat(text: String)

    /// Parses `/name args`; nil when the message is not one of the known commands.
    public static func parse(_ message: String) -> SlashCommand? {
        let trimmed = message.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.hasPrefix("/") else { return nil }
        let name = trimmed.dropFirst().prefix(while: { $0.isLetter }).lowercased()
        let rest = trimmed.dropFirst(1 + name.count)
        guard rest.isEmpty || rest.first!.isWhitespace else { return nil }
        let arguments = rest.trimmingCharacters(in: .whitespacesAndNewlines)
        switch name {
        case "help", "start": return .help
        case "summarize", "summarise", "tldr": return .summarize(text: arguments)
        case "translate":
            let target = arguments.prefix(while: { !$0.isWhitespace })
            guard let code = LanguageNames.code(of: String(target)) else { return .help }
            return .translate(target: code, text: arguments.dropFirst(target.count).trimmingCharacters(in: .whitespacesAndNewlines))
        case "chat": return .chat(text: arguments)
        default: return nil
        }
    }

    public var topic: String {
        switch self {
        case .help: "help"
        case .summarize: "summarize"
        case .translate: "translate"
        case .chat: Classification.generalTopic
        }
    }
}

/// A cheap guess of a message's language from common words, for steps that do not ask a model.
public enum LanguageGuess {
    static let stopwords: [String: Set<String>] = [
        "en": ["the", "and", "is", "are", "you", "what", "how", "please", "my", "with", "for", "this", "can", "i", "hello", "thanks"],
        "de": ["der", "die", "das", "und", "ist", "ich", "nicht", "bitte", "mein", "wie", "was", "mit", "hallo", "danke", "ein", "eine"],
        "fr": ["le", "la", "les", "et", "est", "je", "pas", "vous", "mon", "comment", "avec", "pour", "bonjour", "merci", "une", "des"],
        "es": ["el", "los", "las", "y", "es", "yo", "no", "usted", "mi", "cómo", "qué", "con", "para", "hola", "gracias", "una"],
        "it": ["il", "gli", "e", "è", "io", "non", "mio", "come", "che", "con", "per", "ciao", "grazie", "una", "sono"],
        "nl": ["de", "het", "en", "is", "ik", "niet", "mijn", "hoe", "wat", "met", "voor", "hallo", "bedankt", "een", "alsjeblieft"],
    ]

    /// The language with the most common words in `text`, when at least one matched.
    public static func guess(_ text: String) -> String? {
        let words = text.lowercased().split(whereSeparator: { !$0.isLetter })
        guard !words.isEmpty else { return nil }
        var best: (String, Int)?
        for (language, set) in stopwords {
            let hits = words.filter { set.contains(String($0)) }.count
            if hits > 0, hits > (best?.1 ?? 0) || (hits == best?.1 && language == "en") { best = (language, hits) }
        }
        return best?.0
    }
}
