import AIProviders
import Foundation
import Storage
import SwitchboardCore

/// What a capability gets to work with.
public struct CapabilityInvocation: Sendable {
    public var node: TaskNode
    /// Whether this node's output is the reply (its text streams as `chunk`, else as `task_chunk`).
    public var isReply: Bool
    /// The node's main input: `inputs["text"]` resolved, else its dependencies' outputs, else the message.
    public var text: String
    /// Every input resolved to text.
    public var inputs: [String: String]
    /// Outputs of the node's dependencies, by node id.
    public var dependencyOutputs: [String: String]
    public var turn: TurnInput
    public var classification: Classification?
    public var provider: any AIProvider
    /// Longest text handed to a model per input (small models have small windows).
    public var maximumInputCharacters: Int
    /// Most tokens a model may write for this node.
    public var maximumOutputTokens: Int?
    /// Streams text to the turn (as `chunk` for the reply node, `task_chunk` otherwise).
    public var emit: @Sendable (String) async throws -> Void
}

public struct CapabilityResult: Sendable, Hashable {
    public var text: String
    public var usage: TokenUsage?
    /// The model that produced it (nil when no model was called).
    public var model: String?
    public var latency: Duration?
    /// The documents the text came from (`rag_query`).
    public var sources: [ReplySource]

    public init(text: String, usage: TokenUsage? = nil, model: String? = nil, latency: Duration? = nil, sources: [ReplySource] = []) {
        self.text = text
        self.usage = usage
        self.model = model
        self.latency = latency
        self.sources = sources
    }
}

/// Something a task graph node can do.
public protocol Capability: Sendable {
    var name: String { get }
    /// One line for the planner's prompt.
    var summary: String { get }
    func run(_ invocation: CapabilityInvocation) async throws -> CapabilityResult
}

/// A failure of one node; its dependents are skipped, the rest of the graph goes on.
public struct CapabilityError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The capabilities the executor and the planner know, by name.
public struct CapabilityRegistry: Sendable {
    private var byName: [String: any Capability] = [:]

    public init(_ capabilities: [any Capability] = []) {
        for capability in capabilities { register(capability) }
    }

    /// chat, summarize, translate, extract_text, compose_reply and help.
    public static func standard(extractor: TextExtractor = TextExtractor()) -> CapabilityRegistry {
        CapabilityRegistry([
            ChatCapability(), SummarizeCapability(), TranslateCapability(), ExtractTextCapability(extractor: extractor),
            ComposeReplyCapability(), HelpCapability(),
        ])
    }

    public mutating func register(_ capability: any Capability) { byName[capability.name] = capability }
    public func capability(named name: String) -> (any Capability)? { byName[name] }
    public var names: Set<String> { Set(byName.keys) }
    /// Names and summaries for the planner (help is answered without planning, so it is left out).
    public var plannerCatalogue: [String: String] {
        byName.filter { $0.key != HelpCapability.capabilityName }.mapValues(\.summary)
    }
}

extension CapabilityInvocation {
    func clipped(_ text: String) -> String {
        text.count > maximumInputCharacters ? String(text.prefix(maximumInputCharacters)) + "\n[…]" : text
    }

    /// Streams a model call to the turn and returns the whole text.
    func streamModel(_ messages: [ChatMessage], slot: ModelSlot = .chat, maxTokens: Int? = nil) async throws -> CapabilityResult {
        let stream = try await provider.streamChat(ChatRequest(messages: messages, slot: slot, maxTokens: maxTokens ?? maximumOutputTokens))
        let completion = try await stream.collect(onToken: emit)
        return CapabilityResult(text: completion.text, usage: completion.usage, model: completion.model, latency: completion.latency)
    }

    var languageHint: String {
        guard let language = classification?.language, let name = LanguageNames.name(of: language) else { return "" }
        return " Answer in \(name)."
    }
}

/// Answers the message as a conversation, with attachments and earlier results as context.
public struct ChatCapability: Capability {
    public let name = "chat"
    public let summary = "answer the user directly (streams tokens)"
    public var systemPrompt: String

    public init(systemPrompt: String = "You are Switchboard's helpful assistant. Answer clearly and concisely.") {
        self.systemPrompt = systemPrompt
    }

    public func run(_ invocation: CapabilityInvocation) async throws -> CapabilityResult {
        var messages: [ChatMessage] = [.system(systemPrompt + invocation.languageHint)]
        var context: [String] = []
        for attachment in invocation.turn.attachments {
            if let text = attachment.text, !text.isEmpty { context.append("File \(attachment.name):\n\(invocation.clipped(text))") }
        }
        for (id, output) in invocation.dependencyOutputs.sorted(by: { $0.key < $1.key }) {
            context.append("Result of \(id):\n\(invocation.clipped(output))")
        }
        if !context.isEmpty { messages.append(.system("Context:\n" + context.joined(separator: "\n\n"))) }
        messages += invocation.turn.history.suffix(10)
        messages.append(.user(invocation.clipped(invocation.inputs["text"] ?? invocation.turn.text)))
        return try await invocation.streamModel(messages)
    }
}

public struct SummarizeCapability: Capability {
    public let name = "summarize"
    public let summary = "summarize a text (input text)"
    public init() {}

    public func run(_ invocation: CapabilityInvocation) async throws -> CapabilityResult {
        guard !invocation.text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw CapabilityError("nothing to summarize") }
        return try await invocation.streamModel([
            .system("Summarize the user's text in a few sentences. Keep the key facts." + invocation.languageHint),
            .user(invocation.clipped(invocation.text)),
        ])
    }
}

public struct TranslateCapability: Capability {
    public let name = "translate"
    public let summary = "translate a text (input text; params.target: language code such as de, fr, es)"
    public init() {}

    public func run(_ invocation: CapabilityInvocation) async throws -> CapabilityResult {
        let target = invocation.node.params["target"] ?? invocation.node.params["language"] ?? "en"
        guard let language = LanguageNames.name(of: target) else { throw CapabilityError("unknown target language '\(target.prefix(20))'") }
        guard !invocation.text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw CapabilityError("nothing to translate") }
        return try await invocation.streamModel([
            .system("Translate the user's text into \(language). Answer with the translation only."),
            .user(invocation.clipped(invocation.text)),
        ])
    }
}

/// The attachments' text (extracting files that were not extracted yet); no model involved.
public struct ExtractTextCapability: Capability {
    public let name = "extract_text"
    public let summary = "the text of the attached files (no input needed)"
    public var extractor: TextExtractor

    public init(extractor: TextExtractor = TextExtractor()) { self.extractor = extractor }

    public func run(_ invocation: CapabilityInvocation) async throws -> CapabilityResult {
        guard !invocation.turn.attachments.isEmpty else { throw CapabilityError("the message has no attachments") }
        var parts: [String] = []
        for attachment in invocation.turn.attachments {
            if let text = attachment.text {
                parts.append(text)
            } else if let error = attachment.extractError {
                throw CapabilityError("\(attachment.name): \(error)")
            } else if let path = attachment.path {
                do {
                    parts.append(try await extractor.extract(path: path, name: attachment.name, mimeType: attachment.mimeType))
                } catch let error as ExtractionError {
                    throw CapabilityError("\(attachment.name): \(error)")
                }
            }
        }
        return CapabilityResult(text: parts.joined(separator: "\n\n"))
    }
}

/// Writes the answer from the results of earlier nodes.
public struct ComposeReplyCapability: Capability {
    public let name = "compose_reply"
    public let summary = "write the final answer from the results of the tasks it depends on"
    public init() {}

    public func run(_ invocation: CapabilityInvocation) async throws -> CapabilityResult {
        let results = invocation.dependencyOutputs.sorted(by: { $0.key < $1.key })
            .map { "Result of \($0.key):\n\(invocation.clipped($0.value))" }.joined(separator: "\n\n")
        return try await invocation.streamModel([
            .system("Answer the user's request using the task results below. Do not mention the tasks." + invocation.languageHint),
            .system(results.isEmpty ? "There are no task results." : results),
            .user(invocation.clipped(invocation.turn.text)),
        ])
    }
}

/// The list of slash commands, without a model.
public struct HelpCapability: Capability {
    public static let capabilityName = "help"
    public let name = HelpCapability.capabilityName
    public let summary = "explain the slash commands"
    public init() {}

    public static let text = """
        Commands:
        /summarize [text] – summarize the text or the attached files
        /translate <language> [text] – translate, e.g. /translate de Good morning
        /chat <text> – answer directly, without routing
        /help – this list
        Anything else is routed to the best topic automatically.
        """

    public func run(_ invocation: CapabilityInvocation) async throws -> CapabilityResult {
        try await invocation.emit(Self.text)
        return CapabilityResult(text: Self.text)
    }
}

/// ISO 639-1 codes Switchboard recognises, with English names for prompts.
public enum LanguageNames {
    static let names: [String: String] = [
        "en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "nl": "Dutch", "pt": "Portuguese",
        "pl": "Polish", "sv": "Swedish", "da": "Danish", "no": "Norwegian", "fi": "Finnish", "cs": "Czech", "tr": "Turkish",
        "ru": "Russian", "uk": "Ukrainian", "el": "Greek", "ar": "Arabic", "he": "Hebrew", "hi": "Hindi", "zh": "Chinese",
        "ja": "Japanese", "ko": "Korean", "hu": "Hungarian", "ro": "Romanian",
    ]

    /// The language's name for a code ("de") or a name ("German", "deutsch"); nil when unknown.
    public static func name(of codeOrName: String) -> String? {
        let key = codeOrName.trimmingCharacters(in: .whitespaces).lowercased()
        if let name = names[key] { return name }
        return code(of: key).flatMap { names[$0] }
    }

    /// The code for a code or a name.
    public static func code(of codeOrName: String) -> String? {
        let key = codeOrName.trimmingCharacters(in: .whitespaces).lowercased()
        if names[key] != nil { return key }
        let aliases = ["deutsch": "de", "français": "fr", "francais": "fr", "español": "es", "espanol": "es", "italiano": "it", "nederlands": "nl", "português": "pt"]
        if let code = aliases[key] { return code }
        return names.first { $0.value.lowercased() == key }?.key
    }
}
