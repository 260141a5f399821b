import AIProviders
import Foundation
import Pipeline
import Testing
import TurnTestSupport
import Turns

/// Waits, then answers with its node id (and the inputs it saw); fails when `params.fail` is set.
struct PauseCapability: Capability {
    let name = "pause"
    let summary = "test"
    func run(_ invocation: CapabilityInvocation) async throws -> CapabilityResult {
        let milliseconds = Int(invocation.node.params["ms"] ?? "50") ?? 50
        try await Task.sleep(for: .milliseconds(milliseconds))
        if let message = invocation.node.params["fail"] { throw CapabilityError(message) }
        let seen = invocation.dependencyOutputs.keys.sorted().joined(separator: ",")
        let text = "\(invocation.node.id)(\(seen))"
        try await invocation.emit(text)
        return CapabilityResult(text: text)
    }
}

@Suite struct GraphExecutorTests {
    static let turn = TurnInput(messageID: 1, userID: 1, text: "question")

    static func executor(concurrency: Int = 4, timeout: Duration = .seconds(30)) -> GraphExecutor {
        var registry = CapabilityRegistry.standard()
        registry.register(PauseCapability())
        return GraphExecutor(registry: registry, maximumConcurrency: concurrency, nodeTimeout: timeout)
    }

    static func pause(_ id: String, _ dependsOn: [String] = [], ms: Int = 50, fail: String? = nil) -> TaskNode {
        var params = ["ms": String(ms)]
        if let fail { params["fail"] = fail }
        return TaskNode(id: id, capability: "pause", dependsOn: dependsOn, params: params)
    }

    @Test func independentBranchesOverlapAndTheJoinWaitsForBoth() async throws {
        let graph = TaskGraph(replyNode: "join", tasks: [
            Self.pause("a1", ms: 150), Self.pause("a2", ["a1"], ms: 150),
            Self.pause("b1", ms: 150), Self.pause("b2", ["b1"], ms: 150),
            Self.pause("join", ["a2", "b2"], ms: 10),
        ])
        let sink = RecordingEventSink()
        let run = try await Self.executor().run(graph, turn: Self.turn, classification: nil, provider: ScriptedProvider.constant(""), sink: sink)
        let t = run.timings
        let (a1, a2, b1, b2, join) = (try #require(t["a1"]), try #require(t["a2"]), try #require(t["b1"]), try #require(t["b2"]), try #require(t["join"]))
        // The branches ran at the same time: each started before the other finished.
        #expect(a1.started < b1.finished && b1.started < a1.finished)
        #expect(a2.started < b2.finished && b2.started < a2.finished)
        // Order within a branch, and the join after both.
        #expect(a1.finished <= a2.started && b1.finished <= b2.started)
        #expect(a2.finished <= join.started && b2.finished <= join.started)
        #expect(run.results["join"]?.text == "join(a2,b2)")
        #expect(await sink.events.chunks == "join(a2,b2)")
    }

    @Test func concurrencyIsBounded() async throws {
        let graph = TaskGraph(replyNode: "c", tasks: [Self.pause("a", ms: 60), Self.pause("b", ms: 60), Self.pause("c", ms: 60)])
        let run = try await Self.executor(concurrency: 1).run(graph, turn: Self.turn, classification: nil, provider: ScriptedProvider.constant(""), sink: RecordingEventSink())
        let spans = run.timings.values.sorted { $0.started < $1.started }
        #expect(spans.count == 3)
        for (earlier, later) in zip(spans, spans.dropFirst()) { #expect(earlier.finished <= later.started) }
    }

    @Test func aFailedNodeSkipsExactlyItsDependents() async throws {
        let graph = TaskGraph(replyNode: "reply", tasks: [
            Self.pause("bad", fail: "no luck"), Self.pause("child", ["bad"]), Self.pause("grandchild", ["child"]),
            Self.pause("other"), Self.pause("reply", ["other"]), Self.pause("sibling", ["other"]),
        ])
        let sink = RecordingEventSink()
        let run = try await Self.executor().run(graph, turn: Self.turn, classification: nil, provider: ScriptedProvider.constant(""), sink: sink)
        #expect(run.states == ["bad": .failed, "child": .skipped, "grandchild": .skipped, "other": .done, "reply": .done, "sibling": .done])
        #expect(run.errors["bad"] == "no luck")
        let events = await sink.events
        let skipped = events.updates.filter { $0.1 == .skipped }.map(\.0)
        #expect(Set(skipped) == ["child", "grandchild"])
        #expect(skipped.count == 2)
        // Skipped nodes never ran.
        #expect(!events.updates.contains { $0.0 == "child" && $0.1 == .running })
        #expect(events.contains(.taskUpdate(TaskUpdate(nodeID: "bad", state: .failed, error: "no luck"))))
    }

    @Test func aNodeOverItsTimeoutFails() async throws {
        let graph = TaskGraph(replyNode: "r", tasks: [Self.pause("slow", ms: 5000), Self.pause("r", ["slow"])])
        let run = try await Self.executor(timeout: .milliseconds(200)).run(graph, turn: Self.turn, classification: nil, provider: ScriptedProvider.constant(""), sink: RecordingEventSink())
        #expect(run.states == ["slow": .failed, "r": .skipped])
        #expect(run.errors["slow"]?.contains("timed out") == true)
    }

    @Test func streamingNodesSendChunksForTheReplyAndTaskChunksOtherwise() async throws {
        let provider = ScriptedProvider { request in
            .init(text: request.messages.first?.content.hasPrefix("Summarize") == true ? "short version" : "final answer here")
        }
        let graph = TaskGraph(replyNode: "answer", tasks: [
            TaskNode(id: "sum", capability: "summarize", inputs: ["text": "message"]),
            TaskNode(id: "answer", capability: "compose_reply", dependsOn: ["sum"]),
        ])
        let sink = RecordingEventSink()
        let run = try await Self.executor().run(graph, turn: Self.turn, classification: nil, provider: provider, sink: sink)
        let events = await sink.events
        let taskText = events.compactMap { if case .taskChunk(let chunk) = $0, chunk.nodeID == "sum" { chunk.text } else { nil } }.joined()
        #expect(taskText == "short version")
        #expect(events.chunks == "final answer here")
        #expect(run.results["answer"]?.text == "final answer here")
        #expect(run.usage.completionTokens > 0)
    }

    @Test func stoppingMidRunCancelsTheRunningNodes() async throws {
        let provider = ScriptedProvider(tokenDelay: .milliseconds(20)) { _ in .init(text: String(repeating: "word ", count: 500)) }
        let graph = TaskGraph(replyNode: "reply", tasks: [
            TaskNode(id: "reply", capability: "chat"), Self.pause("side", ms: 60_000),
        ])
        let sink = RecordingEventSink()
        let executor = Self.executor()
        let running = Task {
            try await executor.run(graph, turn: Self.turn, classification: nil, provider: provider, sink: sink)
        }
        // Stop once the reply is streaming.
        while await sink.events.chunks.count < 20 { try await Task.sleep(for: .milliseconds(10)) }
        running.cancel()
        await #expect(throws: CancellationError.self) { _ = try await running.value }
        let events = await sink.events
        let chunksAtStop = events.chunks.count
        #expect(chunksAtStop < 500 * 5)
        #expect(!events.contains(.taskUpdate(TaskUpdate(nodeID: "reply", state: .done))))
        // Nothing more arrives afterwards.
        try await Task.sleep(for: .milliseconds(100))
        #expect(await sink.events.chunks.count == chunksAtStop)
    }
}
