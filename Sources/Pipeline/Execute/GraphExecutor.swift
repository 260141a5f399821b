import AIProviders
import Foundation
import Logging
import Storage
import SwitchboardCore
import Turns

/// When a node ran, for traces and tests.
public struct NodeTiming: Sendable, Hashable {
    public var started: ContinuousClock.Instant
    public var finished: ContinuousClock.Instant
}

/// What running a graph produced.
public struct GraphRun: Sendable {
    public var states: [String: NodeState]
    public var results: [String: CapabilityResult]
    public var errors: [String: String]
    public var timings: [String: NodeTiming]

    public var usage: TokenUsage { results.values.compactMap(\.usage).reduce(.zero, +) }
}

/// Runs a validated task graph: a node starts as soon as its dependencies are done, up to
/// `maximumConcurrency` at once; each has `nodeTimeout`; a failed node marks everything that
/// depends on it (directly or not) skipped while independent branches go on. Cancelling the
/// calling task cancels every running node (the provider closes its HTTP stream) and throws
/// `CancellationError`.
public struct GraphExecutor: Sendable {
    public var registry: CapabilityRegistry
    public var maximumConcurrency: Int
    public var nodeTimeout: Duration
    public var maximumInputCharacters: Int
    public var maximumOutputTokens: Int?
    /// Where task rows are kept (`message_tasks`); nil keeps them in memory only.
    public var taskStore: (any MessageTaskStore)?
    public var logger: Logger

    public init(
        registry: CapabilityRegistry, maximumConcurrency: Int = 4, nodeTimeout: Duration = .seconds(120),
        maximumInputCharacters: Int = 6000, maximumOutputTokens: Int? = 1024, taskStore: (any MessageTaskStore)? = nil, logger: Logger = Logger(label: "switchboard.executor")
    ) {
        self.registry = registry
        self.maximumConcurrency = max(1, maximumConcurrency)
        self.nodeTimeout = nodeTimeout
        self.maximumInputCharacters = maximumInputCharacters
        self.maximumOutputTokens = maximumOutputTokens
        self.taskStore = taskStore
        self.logger = logger
    }

    private enum NodeOutcome: Sendable {
        case done(CapabilityResult)
        case failed(String)
        case cancelled
    }

    /// The nodes with no dependencies, in the graph's order: the first ones started.
    static func roots(_ graph: TaskGraph) -> [String] {
        graph.tasks.filter { graph.dependencies(of: $0).isEmpty }.map(\.id)
    }

    /// The nodes `run` starts before any other finishes.
    func startedAtOnce(_ graph: TaskGraph) -> [String] {
        Array(Self.roots(graph).prefix(maximumConcurrency))
    }

    /// Runs `graph` (already validated) for `turn`, emitting `task_update`, `task_chunk` and `chunk`.
    /// `emitUpdates` false leaves out `task_update` (a one-node answer needs no task cards).
    public func run(
        _ graph: TaskGraph, turn: TurnInput, classification: Classification?, provider: any AIProvider, sink: any TurnEventSink,
        emitUpdates: Bool = true
    ) async throws -> GraphRun {
        let nodes = Dictionary(graph.tasks.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var waitingOn: [String: Set<String>] = [:]
        var dependents: [String: [String]] = [:]
        for node in graph.tasks {
            let dependencies = graph.dependencies(of: node)
            waitingOn[node.id] = Set(dependencies)
            for dependency in dependencies { dependents[dependency, default: []].append(node.id) }
        }
        var run = GraphRun(states: [:], results: [:], errors: [:], timings: [:])
        for node in graph.tasks { run.states[node.id] = .pending }
        var ready = Self.roots(graph)

        func update(_ id: String, _ state: NodeState, output: String? = nil, error: String? = nil) async throws {
            run.states[id] = state
            if emitUpdates, let reported = state.reported { try await sink.emit(.taskUpdate(TaskUpdate(nodeID: id, state: reported, error: error))) }
            if let taskStore {
                do {
                    _ = try await taskStore.updateTask(messageID: turn.messageID, nodeID: id, state: state.taskState, output: output, error: error)
                } catch {
                    logger.warning("task row not updated", metadata: ["node": "\(id)", "error": "\(error)"])
                }
            }
        }

        /// Marks every node downstream of `id` skipped (those not started: all of them, since none could start).
        func skipDependents(of id: String, because reason: String) async throws {
            var queue = dependents[id] ?? []
            while let next = queue.first {
                queue.removeFirst()
                guard run.states[next] == .pending else { continue }
                try await update(next, .skipped, error: reason)
                queue += dependents[next] ?? []
            }
        }

        try await withThrowingTaskGroup(of: (String, NodeOutcome, NodeTiming).self) { group in
            var running = 0
            func launch() async throws {
                while running < maximumConcurrency, !ready.isEmpty {
                    let id = ready.removeFirst()
                    guard let node = nodes[id] else { continue }
                    try await update(id, .running)
                    let invocation = makeInvocation(node, graph: graph, run: run, turn: turn, classification: classification, provider: provider, sink: sink)
                    let capability = registry.capability(named: node.capability)
                    let timeout = nodeTimeout
                    group.addTask {
                        let started = ContinuousClock.now
                        let outcome = await PipelineTracing.node(invocation.node, isReply: invocation.isReply) {
                            await Self.execute(capability, invocation, timeout: timeout)
                        } failure: { outcome in
                            if case .failed(let message) = outcome { message } else { nil }
                        }
                        return (id, outcome, NodeTiming(started: started, finished: .now))
                    }
                    running += 1
                }
            }
            try await launch()
            while let (id, outcome, timing) = try await group.next() {
                running -= 1
                run.timings[id] = timing
                switch outcome {
                case .done(let result):
                    run.results[id] = result
                    try await update(id, .done, output: result.text)
                    for dependent in dependents[id] ?? [] {
                        waitingOn[dependent]?.remove(id)
                        if waitingOn[dependent]?.isEmpty == true, run.states[dependent] == .pending { ready.append(dependent) }
                    }
                case .failed(let message):
                    run.errors[id] = message
                    logger.info("task failed", metadata: ["node": "\(id)", "error": "\(message)"])
                    try await update(id, .failed, error: message)
                    try await skipDependents(of: id, because: "depends on \(id), which failed")
                case .cancelled:
                    group.cancelAll()
                    throw CancellationError()
                }
                try Task.checkCancellation()
                try await launch()
            }
        }
        try Task.checkCancellation()
        return run
    }

    private func makeInvocation(
        _ node: TaskNode, graph: TaskGraph, run: GraphRun, turn: TurnInput, classification: Classification?, provider: any AIProvider,
        sink: any TurnEventSink
    ) -> CapabilityInvocation {
        let attachmentsText = turn.attachments.compactMap { attachment in attachment.text.map { "\(attachment.name):\n\($0)" } }
            .joined(separator: "\n\n")
        func resolve(_ value: String) -> String {
            switch value {
            case "message": return turn.text
            case "attachments": return attachmentsText
            default:
                if value.hasPrefix("@") { return run.results[String(value.dropFirst())]?.text ?? "" }
                return value
            }
        }
        let inputs = node.inputs.mapValues(resolve)
        var outputs: [String: String] = [:]
        for dependency in graph.dependencies(of: node) { outputs[dependency] = run.results[dependency]?.text ?? "" }
        let text = inputs["text"] ?? (outputs.isEmpty ? turn.text : outputs.sorted { $0.key < $1.key }.map(\.value).joined(separator: "\n\n"))
        let isReply = node.id == graph.replyNode
        let nodeID = node.id
        return CapabilityInvocation(
            node: node, isReply: isReply, text: text, inputs: inputs, dependencyOutputs: outputs, turn: turn,
            classification: classification, provider: provider, maximumInputCharacters: maximumInputCharacters,
            maximumOutputTokens: maximumOutputTokens,
            emit: { piece in
                guard !piece.isEmpty else { return }
                try await sink.emit(isReply ? .chunk(piece) : .taskChunk(TaskChunk(nodeID: nodeID, text: piece)))
            }
        )
    }

    /// Runs one node within its timeout; never throws.
    private static func execute(_ capability: (any Capability)?, _ invocation: CapabilityInvocation, timeout: Duration) async -> NodeOutcome {
        guard let capability else { return .failed("unknown capability '\(invocation.node.capability)'") }
        do {
            return try await withThrowingTaskGroup(of: NodeOutcome?.self) { group in
                group.addTask {
                    let result = try await capability.run(invocation)
                    try Task.checkCancellation()
                    return .done(result)
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next() else { return .failed("no result") }
                return first ?? .failed("timed out after \(timeout)")
            }
        } catch is CancellationError {
            return Task.isCancelled ? .cancelled : .failed("cancelled")
        } catch let error as AIProviderError {
            if Task.isCancelled { return .cancelled }
            return .failed(error.description)
        } catch let error as CapabilityError {
            return .failed(error.message)
        } catch {
            if Task.isCancelled { return .cancelled }
            return .failed("\(error)")
        }
    }
}
