import AIProviders
import Foundation
import Logging
import SwitchboardCore

/// A plan ready to run, and whether it is the planner's own or the fallback.
public struct PlanDecision: Sendable, Hashable {
    public var graph: TaskGraph
    /// Why the planner's graph was not used (nil when it was).
    public var fallbackReason: String?
    public var usage: TokenUsage?

    public init(graph: TaskGraph, fallbackReason: String? = nil, usage: TokenUsage? = nil) {
        self.graph = graph
        self.fallbackReason = fallbackReason
        self.usage = usage
    }
}

/// Asks the model (slot `plan`) for a task graph as JSON and validates it; anything wrong becomes
/// a single `chat` node with the reason.
public struct Planner: Sendable {
    public var provider: any AIProvider
    public var validator: PlanValidator
    public var logger: Logger

    public init(provider: any AIProvider, validator: PlanValidator, logger: Logger = Logger(label: "switchboard.planner")) {
        self.provider = provider
        self.validator = validator
        self.logger = logger
    }

    public func plan(message: String, hasAttachments: Bool, capabilities: [String: String]) async throws -> PlanDecision {
        let request = ChatRequest(
            messages: [.system(Self.instructions(capabilities: capabilities, hasAttachments: hasAttachments)), .user(message)],
            slot: .plan, temperature: 0, maxTokens: 800, jsonOutput: true
        )
        let completion: ChatCompletion
        do {
            completion = try await provider.chat(request)
        } catch let error as AIProviderError {
            logger.notice("planner unavailable; answering with one chat node", metadata: ["error": "\(error)"])
            return PlanDecision(graph: .singleChat, fallbackReason: "the planner failed: \(error.code)")
        }
        return decide(completion.text, usage: completion.usage)
    }

    /// Validates a planner's answer (the JSON text), falling back to one chat node.
    public func decide(_ answer: String, usage: TokenUsage? = nil) -> PlanDecision {
        guard let data = JSONExtraction.firstObject(in: answer) else {
            return PlanDecision(graph: .singleChat, fallbackReason: "malformed: the planner's answer holds no JSON object", usage: usage)
        }
        let graph: TaskGraph
        do {
            graph = try JSONDecoder().decode(TaskGraph.self, from: data)
        } catch {
            return PlanDecision(graph: .singleChat, fallbackReason: "malformed: the plan does not have the expected shape", usage: usage)
        }
        do {
            try validator.validate(graph)
        } catch {
            logger.info("planner's graph refused", metadata: ["reason": "\(error)"])
            return PlanDecision(graph: .singleChat, fallbackReason: error.description, usage: usage)
        }
        return PlanDecision(graph: graph, usage: usage)
    }

    static func instructions(capabilities: [String: String], hasAttachments: Bool) -> String {
        let list = capabilities.sorted { $0.key < $1.key }.map { "- \($0.key): \($0.value)" }.joined(separator: "\n")
        return """
            You split a user's request into a small graph of tasks. Answer with JSON only:
            {"reply_node": "<id>", "tasks": [{"id": "<id>", "capability": "<capability>", "depends_on": ["<id>"], \
            "inputs": {"text": "message" | "attachments" | "@<id>"}, "params": {}}]}
            Capabilities:
            \(list)
            Inputs: "message" is the user's text, "attachments" the text of the attached files\(hasAttachments ? "" : " (there are none)"), \
            "@<id>" the output of an earlier task. Use at most 8 tasks. The reply_node task writes the final answer, usually compose_reply.
            Example: {"reply_node":"answer","tasks":[{"id":"sum","capability":"summarize","inputs":{"text":"attachments"}},\
            {"id":"de","capability":"translate","depends_on":["sum"],"inputs":{"text":"@sum"},"params":{"target":"de"}},\
            {"id":"answer","capability":"compose_reply","depends_on":["sum","de"],"inputs":{"text":"message"}}]}
            """
    }
}
