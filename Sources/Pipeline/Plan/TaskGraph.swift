import Foundation
import Turns
import SwitchboardCore

/// One node of a task graph: a capability applied to inputs.
///
/// Inputs name where their text comes from: `"message"` (the user's text), `"attachments"` (the
/// extracted text of the attachments), `"@<node id>"` (that node's output; the node becomes a
/// dependency), or anything else as literal text.
public struct TaskNode: Sendable, Hashable, Codable {
    public var id: String
    public var capability: String
    public var dependsOn: [String]
    public var inputs: [String: String]
    public var params: [String: String]

    enum CodingKeys: String, CodingKey {
        case id, capability, inputs, params
        case dependsOn = "depends_on"
    }

    public init(id: String, capability: String, dependsOn: [String] = [], inputs: [String: String] = [:], params: [String: String] = [:]) {
        self.id = id
        self.capability = capability
        self.dependsOn = dependsOn
        self.inputs = inputs
        self.params = params
    }

    /// Lenient decoding of what a model wrote: numbers and booleans in `inputs`/`params` become strings,
    /// a missing `depends_on` is empty.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(LooseString.self, forKey: .id).value
        capability = try container.decode(String.self, forKey: .capability)
        dependsOn = try container.decodeIfPresent([LooseString].self, forKey: .dependsOn)?.map(\.value) ?? []
        inputs = try container.decodeIfPresent([String: LooseString].self, forKey: .inputs)?.mapValues(\.value) ?? [:]
        params = try container.decodeIfPresent([String: LooseString].self, forKey: .params)?.mapValues(\.value) ?? [:]
    }

    /// The node ids this node's inputs refer to.
    public var inputReferences: [String] {
        inputs.values.sorted().compactMap { $0.hasPrefix("@") ? String($0.dropFirst()) : nil }
    }
}

/// A planned turn: nodes and the one whose output is the reply.
public struct TaskGraph: Sendable, Hashable, Codable {
    public var replyNode: String
    public var tasks: [TaskNode]

    enum CodingKeys: String, CodingKey {
        case tasks
        case replyNode = "reply_node"
    }

    public init(replyNode: String, tasks: [TaskNode]) {
        self.replyNode = replyNode
        self.tasks = tasks
    }

    /// One `chat` node answering the message.
    public static let singleChat = TaskGraph(replyNode: "reply", tasks: [TaskNode(id: "reply", capability: "chat", inputs: ["text": "message"])])

    public var planNodes: [TurnPlan.Node] {
        tasks.map { TurnPlan.Node(id: $0.id, capability: $0.capability, kind: $0.id == replyNode ? "reply" : "task") }
    }

    /// Every node's dependencies: `depends_on` plus the nodes its inputs refer to.
    public func dependencies(of node: TaskNode) -> [String] {
        var seen = Set<String>()
        return (node.dependsOn + node.inputReferences).filter { seen.insert($0).inserted }
    }
}

/// A value a model wrote as a string, number or boolean.
struct LooseString: Decodable, Hashable {
    var value: String
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let string = try? container.decode(String.self) {
            value = string
        } else if let int = try? container.decode(Int.self) {
            value = String(int)
        } else if let double = try? container.decode(Double.self) {
            value = String(double)
        } else if let bool = try? container.decode(Bool.self) {
            value = String(bool)
        } else {
            throw DecodingError.typeMismatch(String.self, .init(codingPath: decoder.codingPath, debugDescription: "expected a string"))
        }
    }
}

/// Why a graph was refused.
public typealias PlanValidationError = CodedError<PlanValidationFailure>

/// The kind of `PlanValidationError`s; the code is what the `plan` event's `fallback_reason` starts with.
public enum PlanValidationFailure {}

extension ErrorCode where Kind == PlanValidationFailure {
    public static var empty: Self { "empty" }
    public static var tooManyNodes: Self { "too_many_nodes" }
    public static var invalidID: Self { "invalid_id" }
    public static var duplicateID: Self { "duplicate_id" }
    public static var unknownCapability: Self { "unknown_capability" }
    public static var unknownDependency: Self { "unknown_dependency" }
    public static var cycle: Self { "cycle" }
    public static var missingReplyNode: Self { "missing_reply_node" }
    public static var malformed: Self { "malformed" }
}

/// The rules every graph must pass before it runs.
public struct PlanValidator: Sendable {
    public var maximumNodes: Int
    public var knownCapabilities: Set<String>

    public init(maximumNodes: Int = 24, knownCapabilities: Set<String>) {
        self.maximumNodes = maximumNodes
        self.knownCapabilities = knownCapabilities
    }

    /// At most `maximumNodes`, unique ids of letters, digits, `_` and `-`, known capabilities,
    /// dependencies that exist, no cycles, and a reply node that exists.
    public func validate(_ graph: TaskGraph) throws(PlanValidationError) {
        guard !graph.tasks.isEmpty else { throw PlanValidationError(.empty, "the plan has no tasks") }
        guard graph.tasks.count <= maximumNodes else {
            throw PlanValidationError(.tooManyNodes, "the plan has \(graph.tasks.count) tasks; at most \(maximumNodes) are allowed")
        }
        var ids = Set<String>()
        for node in graph.tasks {
            guard !node.id.isEmpty, node.id.count <= 64, node.id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }) else {
                throw PlanValidationError(.invalidID, "task id '\(node.id.prefix(64))' must be 1–64 letters, digits, '_' or '-'")
            }
            guard ids.insert(node.id).inserted else { throw PlanValidationError(.duplicateID, "task id '\(node.id)' is used twice") }
            guard knownCapabilities.contains(node.capability) else {
                throw PlanValidationError(.unknownCapability, "task '\(node.id)' uses unknown capability '\(node.capability.prefix(64))'")
            }
        }
        for node in graph.tasks {
            for dependency in graph.dependencies(of: node) where !ids.contains(dependency) {
                throw PlanValidationError(.unknownDependency, "task '\(node.id)' depends on unknown task '\(dependency.prefix(64))'")
            }
        }
        guard ids.contains(graph.replyNode) else {
            throw PlanValidationError(.missingReplyNode, "reply_node '\(graph.replyNode.prefix(64))' is not a task of the plan")
        }
        if let cycle = Self.findCycle(graph) {
            throw PlanValidationError(.cycle, "tasks depend on each other in a circle: \(cycle.joined(separator: " → "))")
        }
    }

    /// A cycle as a path of ids (first repeated at the end), or nil.
    static func findCycle(_ graph: TaskGraph) -> [String]? {
        let byID = Dictionary(graph.tasks.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        enum Mark { case visiting, done }
        var marks: [String: Mark] = [:]
        var path: [String] = []
        func visit(_ id: String) -> [String]? {
            if marks[id] == .done { return nil }
            if marks[id] == .visiting {
                let start = path.firstIndex(of: id) ?? 0
                return Array(path[start...]) + [id]
            }
            marks[id] = .visiting
            path.append(id)
            for dependency in byID[id].map(graph.dependencies(of:)) ?? [] {
                if let cycle = visit(dependency) { return cycle }
            }
            path.removeLast()
            marks[id] = .done
            return nil
        }
        for node in graph.tasks {
            if let cycle = visit(node.id) { return cycle }
        }
        return nil
    }
}
