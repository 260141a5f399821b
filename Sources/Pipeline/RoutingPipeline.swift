import AIProviders
import Files
import Foundation
import Logging
import RedisClient
import Storage
import SwitchboardCore
import Turns

/// Settings of the routing pipeline (models and provider timeouts live in `AIProviderConfiguration`).
public struct PipelineConfiguration: Sendable, Hashable {
    public var classifier = ClassifierSettings()
    /// Ask the planner for a graph when the classifier says the message has several intents.
    public var planningEnabled = true
    public var maximumPlanNodes = 24
    /// Nodes running at once within one turn.
    public var maximumConcurrency = 4
    public var nodeTimeout: Duration = .seconds(120)
    /// Longest text handed to a model per input.
    public var maximumInputCharacters = 6000
    /// Most tokens a model may write per node (small local models otherwise fill their window).
    public var maximumOutputTokens: Int? = 1024
    /// How long topic rules are trusted without an invalidation message.
    public var rulesCacheTTL: Duration = .seconds(60)
    /// Earlier messages of the chat handed to the models as history.
    public var historyLimit = 10
    /// Passages `rag_query` hands the chat, and the lowest cosine score worth handing.
    public var ragChunks = 4
    public var ragMinimumScore: Float = 0.2

    public init() {}
}

/// The entry point a turn job calls: extract → classify → plan → execute, streaming progress to a
/// `TurnEventSink` and returning the outcome. It does not write `complete`/`error` itself: the
/// caller does, from the returned `TurnOutcome` or the thrown `PipelineError` (or
/// `CancellationError` when the task was cancelled by a stop request).
public final class RoutingPipeline: Sendable {
    public let provider: any AIProvider
    public let stores: Stores
    public let redis: RedisClient?
    public let configuration: PipelineConfiguration
    public let registry: CapabilityRegistry
    public let rules: RoutingRulesCache
    public let classifier: Classifier
    /// Search over the users' documents (`rag_query`); nil when this node cannot embed.
    public let search: FileSearch?
    private let extractor: TextExtractor
    private let logger: Logger

    public init(
        provider: any AIProvider, stores: Stores, redis: RedisClient?, configuration: PipelineConfiguration = .init(),
        registry: CapabilityRegistry? = nil, extractor: TextExtractor = TextExtractor(), logger: Logger = Logger(label: "switchboard.pipeline"),
        search: FileSearch? = nil
    ) {
        self.provider = provider
        self.stores = stores
        self.redis = redis
        self.configuration = configuration
        self.extractor = extractor
        self.search = search
        var capabilities = registry ?? .standard(extractor: extractor)
        if let search, capabilities.capability(named: RagQueryCapability.capabilityName) == nil {
            capabilities.register(RagQueryCapability(search: search, chunks: configuration.ragChunks, minimumScore: configuration.ragMinimumScore))
        }
        self.registry = capabilities
        self.logger = logger
        rules = RoutingRulesCache(topics: stores.topics, ttl: configuration.rulesCacheTTL, logger: logger)
        classifier = Classifier(
            provider: provider, rules: rules, redis: redis, settings: configuration.classifier, logger: logger
        )
    }

    /// Subscribes to rule edits (call once per process, before serving turns).
    public func start() async throws {
        if let redis { try await rules.start(redis: redis) }
    }

    public func shutdown() async {
        await rules.stop()
    }

    /// Runs a stored message: loads its attachments and the chat's recent history, then `run(turn:)`.
    public func run(message: Message, sink: any TurnEventSink, isRestart: Bool = false) async throws -> TurnOutcome {
        let historyLimit = configuration.historyLimit
        // Both reads at once: they sit on the path to the first token.
        async let attachedFiles = stores.files.files(messageID: message.id)
        async let earlierMessages = historyLimit > 0
            ? stores.messages.messages(chatID: message.chatID, ownerID: message.ownerID, limit: historyLimit + 1, beforeID: message.id, afterID: nil)
            : []
        let (files, earlier) = try await (attachedFiles, earlierMessages)
        return try await run(message: message, files: files, earlier: earlier, historyLimit: historyLimit, isRestart: isRestart, sink: sink)
    }

    /// Runs a message read with its context (`MessageStore.messageContext`, read with
    /// `earlierMessages` earlier messages); its files are read only when it has some.
    public func run(context: MessageContext, sink: any TurnEventSink, isRestart: Bool = false) async throws -> TurnOutcome {
        let historyLimit = configuration.historyLimit
        let files = context.attachmentCount > 0 ? try await stores.files.files(messageID: context.message.id) : []
        return try await run(
            message: context.message, files: files, earlier: context.earlier, historyLimit: historyLimit, isRestart: isRestart, sink: sink)
    }

    /// `earlier`: the chat's messages before `message`, newest first.
    private func run(
        message: Message, files: [StoredFile], earlier: [Message], historyLimit: Int, isRestart: Bool, sink: any TurnEventSink
    ) async throws -> TurnOutcome {
        let history: [ChatMessage] = earlier.reversed().compactMap { stored in
            guard stored.status == .completed || stored.role == .user, !stored.content.isEmpty else { return nil }
            switch stored.role {
            case .user: return .user(stored.content)
            case .assistant, .operator: return .assistant(stored.content)
            case .system: return nil
            }
        }
        var turn = TurnInput(
            messageID: message.id, userID: message.ownerID, chatID: message.chatID, text: message.content, channel: message.channel,
            attachments: files.map(TurnAttachment.init(file:)), history: Array(history.suffix(historyLimit))
        )
        turn.isRestart = isRestart
        return try await run(turn: turn, sink: sink)
    }

    public func run(turn: TurnInput, sink: any TurnEventSink) async throws -> TurnOutcome {
        var logger = self.logger
        logger[metadataKey: "message_id"] = "\(turn.messageID)"
        var turn = turn
        var usage = TokenUsage.zero

        // Extract what was not extracted yet (the `extract` job usually has).
        if turn.attachments.contains(where: { $0.text == nil && $0.extractError == nil }) {
            try await sink.emit(.status(.extracting))
            turn.attachments = try await PipelineTracing.stage("extract", messageID: turn.messageID) { [turn] in
                var attachments = turn.attachments
                for index in attachments.indices where attachments[index].text == nil && attachments[index].extractError == nil {
                    try Task.checkCancellation()
                    attachments[index] = await extract(attachments[index], logger: logger)
                }
                return attachments
            }
        }
        if let broken = turn.attachments.first(where: { $0.text == nil }), turn.text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
            || turn.attachments.allSatisfy({ $0.text == nil })
        {
            throw PipelineError(.extractionFailed, "\(broken.name): \(broken.extractError ?? "no text could be extracted")")
        }

        try await sink.emit(.status(.classifying))
        if let search, registry.capability(named: RagQueryCapability.capabilityName) != nil {
            do {
                turn.hasDocuments = try await search.hasDocuments(ownerID: turn.userID)
            } catch {
                logger.warning("documents not looked up; answering without them", metadata: ["error": "\(error)"])
            }
        }
        // Every model call of the turn is recorded in one INSERT once the graph ran (or failed):
        // a commit is not something the first token should wait for.
        var calls: [UsageCall] = []
        do {
            let classifyStarted = ContinuousClock.now
            let (classification, classifyUsage) = try await PipelineTracing.stage("classify", messageID: turn.messageID) { [turn] in
                try await classifier.classify(turn)
            }
            usage = usage + (classifyUsage ?? .zero)
            appendCall(classifyUsage, model: provider.model(for: .sort), latency: .now - classifyStarted, turn: turn, to: &calls)
            try await sink.emit(.status(TurnStatus(
                stage: .classified, topic: classification.topic, language: classification.language, source: classification.source.rawValue)))
            logger.debug("classified", metadata: ["topic": "\(classification.topic)", "source": "\(classification.source.rawValue)"])
            try Task.checkCancellation()
            if turn.hasDocuments { turn.topicIDs = await topicIDs(named: classification.topic, ownerID: turn.userID, logger: logger) }

            let planStarted = ContinuousClock.now
            let decision = try await PipelineTracing.stage("plan", messageID: turn.messageID) { [turn] in
                try await plan(turn, classification, sink: sink)
            }
            usage = usage + (decision.usage ?? .zero)
            appendCall(decision.usage, model: provider.model(for: .plan), latency: .now - planStarted, turn: turn, to: &calls)
            let outcome = try await execute(decision, turn: turn, classification: classification, usage: usage, calls: &calls, sink: sink, logger: logger)
            await record(calls, logger: logger)
            return outcome
        } catch {
            await record(calls, logger: logger)
            throw error
        }
    }

    /// Saves the task rows and runs the graph; the reply node's output is the answer. The graph's
    /// model calls are added to `calls`, also when it fails.
    private func execute(
        _ decision: PlanDecision, turn: TurnInput, classification: Classification, usage: TokenUsage, calls: inout [UsageCall],
        sink: any TurnEventSink, logger: Logger
    ) async throws -> TurnOutcome {
        var usage = usage
        let graph = decision.graph
        let showsPlan = graph.tasks.count > 1 || decision.fallbackReason != nil
        if showsPlan {
            try await sink.emit(.plan(TurnPlan(nodes: graph.planNodes, replyNode: graph.replyNode, fallbackReason: decision.fallbackReason)))
        }
        let rows = TaskRowWriter(store: stores.tasks, messageID: turn.messageID, logger: logger)
        let executor = GraphExecutor(
            registry: registry, maximumConcurrency: configuration.maximumConcurrency, nodeTimeout: configuration.nodeTimeout,
            maximumInputCharacters: configuration.maximumInputCharacters, maximumOutputTokens: configuration.maximumOutputTokens,
            taskStore: rows, logger: logger
        )
        // The nodes the executor starts at once are stored `running` by the plan's own insert.
        let startsAtOnce = Set(executor.startedAtOnce(graph))
        let planned = graph.tasks.map {
            PlannedTask(
                nodeID: $0.id, capability: $0.capability, dependsOn: graph.dependencies(of: $0), startsRunning: startsAtOnce.contains($0.id))
        }
        if turn.isRestart {
            _ = try await rows.saveTasks(messageID: turn.messageID, tasks: planned)
        } else {
            try await rows.insertTasks(messageID: turn.messageID, tasks: planned)
        }

        let result: GraphRun
        do {
            try await sink.emit(.status(.generating))
            result = try await PipelineTracing.stage("execute", messageID: turn.messageID) {
                try await executor.run(graph, turn: turn, classification: classification, provider: provider, sink: sink, emitUpdates: showsPlan)
            }
        } catch {
            await rows.finish()
            throw error
        }
        await rows.finish()
        usage = usage + result.usage
        for node in result.results.values {
            guard let model = node.model else { continue }
            appendCall(node.usage, model: model, latency: node.latency ?? .zero, turn: turn, to: &calls)
        }

        guard result.states[graph.replyNode] == .done, let reply = result.results[graph.replyNode] else {
            let reason = result.errors[graph.replyNode] ?? result.errors.sorted { $0.key < $1.key }.first.map { "\($0.key): \($0.value)" } ?? "no reply"
            let providerFailure = result.errors.values.contains { $0.hasPrefix("provider_") }
            throw PipelineError(providerFailure ? .providerFailed : .replyFailed, reason)
        }
        return TurnOutcome(
            reply: reply.text, classification: classification, provider: provider.name,
            model: reply.model ?? provider.model(for: .chat), usage: usage, tasks: result.states,
            sources: Self.sources(of: result)
        )
    }

    /// The graph for a classified message: fixed graphs for commands, the planner for several
    /// intents, one chat node otherwise.
    func plan(_ turn: TurnInput, _ classification: Classification, sink: any TurnEventSink) async throws -> PlanDecision {
        let hasAttachments = !turn.attachments.isEmpty
        switch classification.command {
        case .help:
            return PlanDecision(graph: TaskGraph(replyNode: "help", tasks: [TaskNode(id: "help", capability: HelpCapability.capabilityName)]))
        case .summarize(let text):
            let source = text.isEmpty ? (hasAttachments ? "attachments" : "message") : text
            return PlanDecision(graph: TaskGraph(replyNode: "summary", tasks: [TaskNode(id: "summary", capability: "summarize", inputs: ["text": source])]))
        case .translate(let target, let text):
            let source = text.isEmpty ? (hasAttachments ? "attachments" : "message") : text
            return PlanDecision(graph: TaskGraph(
                replyNode: "translation",
                tasks: [TaskNode(id: "translation", capability: "translate", inputs: ["text": source], params: ["target": target])]
            ))
        case .chat(let text):
            return PlanDecision(graph: TaskGraph(replyNode: "reply", tasks: [TaskNode(id: "reply", capability: "chat", inputs: ["text": text.isEmpty ? "message" : text])]))
        case nil:
            break
        }
        // The user's documents are looked in when there are some, unless the classifier says the
        // message does not need them (small talk, general knowledge).
        let usesDocuments = turn.hasDocuments && classification.needsDocuments != false
        guard classification.multi, configuration.planningEnabled else {
            return PlanDecision(graph: usesDocuments ? Self.documentChat : .singleChat)
        }
        try await sink.emit(.status(.planning))
        var known = registry.names
        var catalogue = registry.plannerCatalogue
        if !usesDocuments {
            known.remove(RagQueryCapability.capabilityName)
            catalogue[RagQueryCapability.capabilityName] = nil
        }
        let planner = Planner(
            provider: provider, validator: PlanValidator(maximumNodes: configuration.maximumPlanNodes, knownCapabilities: known),
            logger: logger
        )
        let decision = try await planner.plan(message: turn.text, hasAttachments: hasAttachments, capabilities: catalogue)
        // The fallback of a user with documents still looks in them.
        if usesDocuments, decision.fallbackReason != nil {
            return PlanDecision(graph: Self.documentChat, fallbackReason: decision.fallbackReason, usage: decision.usage)
        }
        return decision
    }

    /// The ids of the topics named `name` that the user sees (their own and a global one), from
    /// the rules cache (no query per turn); empty when it cannot be read.
    private func topicIDs(named name: String, ownerID: Int64, logger: Logger) async -> Set<Int64> {
        do {
            return Set(try await rules.topics(ownerID: ownerID).filter { $0.name == name }.map(\.id))
        } catch {
            logger.warning("topics not read; searching every document", metadata: ["error": "\(error)"])
            return []
        }
    }

    /// A plain message of a user with indexed documents: look in them, then answer with the passages as context.
    static let documentChat = TaskGraph(replyNode: "reply", tasks: [
        TaskNode(id: "documents", capability: RagQueryCapability.capabilityName, inputs: ["text": "message"]),
        TaskNode(id: "reply", capability: "chat", dependsOn: ["documents"], inputs: ["text": "message"]),
    ])

    /// The sources of every node's result, best first, each (file, position) once.
    static func sources(of run: GraphRun) -> [ReplySource] {
        var seen = Set<String>()
        return run.results.values.flatMap(\.sources).sorted { $0.score > $1.score }.filter { source in
            seen.insert("\(source.fileId ?? 0)|\(source.position)").inserted
        }
    }

    private func extract(_ attachment: TurnAttachment, logger: Logger) async -> TurnAttachment {
        var attachment = attachment
        guard let path = attachment.path else {
            attachment.extractError = "the file has no stored content"
            return attachment
        }
        do {
            let text = try await extractor.extract(path: path, name: attachment.name, mimeType: attachment.mimeType)
            attachment.text = text
            if let id = attachment.fileID { _ = try? await stores.files.updateExtraction(id: id, status: .done, text: text, error: nil) }
        } catch let error as ExtractionError {
            attachment.extractError = error.description
            if let id = attachment.fileID { _ = try? await stores.files.updateExtraction(id: id, status: .failed, text: nil, error: error.description) }
        } catch {
            attachment.extractError = "\(error)"
        }
        return attachment
    }

    /// A model call worth a usage row (a step that asked no model has no tokens).
    private func appendCall(_ counted: TokenUsage?, model: String, latency: Duration, turn: TurnInput, to calls: inout [UsageCall]) {
        guard let counted, counted.totalTokens > 0 else { return }
        let (seconds, attoseconds) = latency.components
        calls.append(UsageCall(
            userID: turn.userID, messageID: turn.messageID, provider: provider.name, model: model, promptTokens: counted.promptTokens,
            completionTokens: counted.completionTokens, latencyMs: Int(seconds * 1000 + attoseconds / 1_000_000_000_000_000)))
    }

    private func record(_ calls: [UsageCall], logger: Logger) async {
        do {
            try await stores.usage.recordUsage(calls)
        } catch {
            logger.warning("usage not recorded", metadata: ["error": "\(error)", "calls": "\(calls.count)"])
        }
    }
}
