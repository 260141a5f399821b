import AIProviders
import Foundation
import Pipeline
import Testing

@Suite struct PlanValidationTests {
    static let planner = Planner(
        provider: ScriptedProvider.constant(""),
        validator: PlanValidator(maximumNodes: 24, knownCapabilities: CapabilityRegistry.standard().names)
    )

    static func json(_ graph: TaskGraph) -> String { String(decoding: try! JSONEncoder().encode(graph), as: UTF8.self) }

    @Test func aValidGraphIsKept() {
        let answer = """
            Here is the plan: {"reply_node":"answer","tasks":[{"id":"text","capability":"extract_text"},
            {"id":"sum","capability":"summarize","depends_on":["text"],"inputs":{"text":"@text"}},
            {"id":"de","capability":"translate","inputs":{"text":"@sum"},"params":{"target":"de","n":3}},
            {"id":"answer","capability":"compose_reply","depends_on":["sum","de"]}]}
            """
        let decision = Self.planner.decide(answer)
        #expect(decision.fallbackReason == nil)
        #expect(decision.graph.tasks.map(\.id) == ["text", "sum", "de", "answer"])
        #expect(decision.graph.tasks[2].params == ["target": "de", "n": "3"])
        // An input reference makes the referenced node a dependency.
        #expect(decision.graph.dependencies(of: decision.graph.tasks[2]) == ["sum"])
    }

    @Test(arguments: [
        ("I would answer the question directly.", "malformed"),
        (#"{"steps": ["chat"]}"#, "malformed"),
        (#"{"reply_node": "a", "tasks": [{"id": "a"}]}"#, "malformed"),
        (#"{"reply_node": "a", "tasks": []}"#, "empty"),
        (#"{"reply_node":"a","tasks":[{"id":"a","capability":"chat","depends_on":["b"]},{"id":"b","capability":"summarize","depends_on":["a"]}]}"#, "cycle"),
        (#"{"reply_node":"a","tasks":[{"id":"a","capability":"chat","depends_on":["a"]}]}"#, "cycle"),
        (#"{"reply_node":"a","tasks":[{"id":"a","capability":"chat","inputs":{"text":"@c"}},{"id":"b","capability":"chat","inputs":{"text":"@a"}},{"id":"c","capability":"chat","depends_on":["b"]}]}"#, "cycle"),
        (#"{"reply_node":"a","tasks":[{"id":"a","capability":"launch_rockets"}]}"#, "unknown_capability"),
        (#"{"reply_node":"a","tasks":[{"id":"a","capability":"chat"},{"id":"a","capability":"summarize"}]}"#, "duplicate_id"),
        (#"{"reply_node":"z","tasks":[{"id":"a","capability":"chat"}]}"#, "missing_reply_node"),
        (#"{"reply_node":"a","tasks":[{"id":"a","capability":"chat","depends_on":["ghost"]}]}"#, "unknown_dependency"),
        (#"{"reply_node":"a b","tasks":[{"id":"a b","capability":"chat"}]}"#, "invalid_id"),
    ])
    func anInvalidPlanFallsBackToOneChatNode(answer: String, reason: String) {
        let decision = Self.planner.decide(answer)
        #expect(decision.graph == .singleChat)
        #expect(decision.fallbackReason?.hasPrefix(reason) == true, "\(decision.fallbackReason ?? "nil")")
    }

    @Test func anOversizedPlanFallsBack() {
        let tasks = (0..<25).map { TaskNode(id: "n\($0)", capability: "chat", dependsOn: $0 == 0 ? [] : ["n\($0 - 1)"]) }
        let decision = Self.planner.decide(Self.json(TaskGraph(replyNode: "n24", tasks: tasks)))
        #expect(decision.graph == .singleChat)
        #expect(decision.fallbackReason?.hasPrefix("too_many_nodes") == true)
        // 24 is still fine.
        let fits = Self.planner.decide(Self.json(TaskGraph(replyNode: "n23", tasks: Array(tasks.prefix(24)))))
        #expect(fits.fallbackReason == nil)
        #expect(fits.graph.tasks.count == 24)
    }

    @Test func aPlannerThatFailsFallsBackWithTheReason() async throws {
        let planner = Planner(
            provider: ScriptedProvider { _ in .failure(AIProviderError(.httpStatus, "boom", status: 500)) },
            validator: PlanValidator(knownCapabilities: ["chat"])
        )
        let decision = try await planner.plan(message: "do two things", hasAttachments: false, capabilities: ["chat": "answer"])
        #expect(decision.graph == .singleChat)
        #expect(decision.fallbackReason?.contains("provider_http_error") == true)
    }
}
