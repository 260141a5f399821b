/// The server HTTP API's methods (after Centrifugo's server API), their authorisation and answers.
import Foundation
import SwitchboardCore
import Synchronization

/// The server HTTP API (`POST /api/<method>`): the same operations Centrifugo's API offers, answered
/// as `{"result": {...}}` or `{"error": {code, message}}` with HTTP 200.
struct HTTPAPI: Sendable {
    let node: Node

    static let methods: Set<String> = [
        "publish", "broadcast", "subscribe", "unsubscribe", "disconnect", "presence", "presence_stats",
        "history", "history_remove", "channels", "info", "batch",
    ]

    /// Authorised when the request carries the configured key in `X-API-Key` or `Authorization: apikey KEY`.
    static func isAuthorised(apiKey: String?, xAPIKey: String?, authorization: String?) -> Bool {
        guard let apiKey, !apiKey.isEmpty else { return false }
        var presented = xAPIKey
        if presented == nil, let authorization {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "apikey" { presented = String(parts[1]) }
        }
        guard let presented else { return false }
        return constantTimeEquals(Array(presented.utf8), Array(apiKey.utf8))
    }

    /// The full answer body for one method call.
    func handle(method: String, body: JSONValue) async -> String {
        var writer = JSONWriter(capacity: 128)
        writer.beginObject()
        do {
            let result = try await call(method: method, params: body)
            writer.rawField("result", result)
        } catch {
            Self.writeError(error, to: &writer)
        }
        writer.endObject()
        return writer.output
    }

    /// Runs one method and answers its result object as JSON text.
    func call(method: String, params: JSONValue) async throws -> String {
        node.metrics.apiRequests.add(1, ordering: .relaxed)
        switch method {
        case "publish":
            let position = try await publish(channel: try string(params, "channel"), params: params)
            return Self.object { Self.writePosition(position, to: &$0) }
        case "broadcast":
            guard case .array(let channels)? = params["channels"] else { throw GatewayError.badRequest }
            // Every channel's publish is queued before any is awaited, so they go to Redis together.
            let results = await withCheckedContinuation { (continuation: CheckedContinuation<[Result<StreamPosition, any Error>], Never>) in
                let collector = ResultCollector(count: channels.count) { continuation.resume(returning: $0) }
                for (index, channel) in channels.enumerated() {
                    do {
                        guard let name = channel.stringValue else { throw GatewayError.badRequest }
                        try startPublish(channel: name, params: params) { collector.set(index, $0) }
                    } catch {
                        collector.set(index, .failure(error))
                    }
                }
            }
            let responses = results.map { result in
                switch result {
                case .success(let position):
                    Self.object { writer in writer.rawField("result", Self.object { Self.writePosition(position, to: &$0) }) }
                case .failure(let error):
                    Self.object { Self.writeError(error, to: &$0) }
                }
            }
            return Self.object { writer in
                writer.key("responses")
                writer.beginArray()
                for response in responses { writer.raw(response) }
                writer.endArray()
            }
        case "subscribe", "unsubscribe":
            let user = try string(params, "user")
            let channel = try string(params, "channel")
            guard node.rules.options(for: channel) != nil else { throw GatewayError.unknownChannel }
            let kind: ControlCommand.Kind = method == "subscribe" ? .subscribe : .unsubscribe
            try await control(ControlCommand(kind: kind, user: user, client: params["client"]?.stringValue, channel: channel))
            return "{}"
        case "disconnect":
            let user = try string(params, "user")
            let code = params["disconnect"]?["code"]?.int64Value.map { Int($0) }
            let reason = params["disconnect"]?["reason"]?.stringValue
            try await control(ControlCommand(kind: .disconnect, user: user, client: params["client"]?.stringValue, code: code, reason: reason))
            return "{}"
        case "presence":
            let channel = try string(params, "channel")
            try requirePresence(channel)
            let entries = try await node.presence.presence(channel: channel)
            return Self.object { writer in
                writer.key("presence")
                writer.beginObject()
                for (client, info) in entries.sorted(by: { $0.key < $1.key }) {
                    writer.key(client)
                    info.write(to: &writer)
                }
                writer.endObject()
            }
        case "presence_stats":
            let channel = try string(params, "channel")
            try requirePresence(channel)
            let stats = try await node.presence.stats(channel: channel)
            return Self.object { writer in
                writer.field("num_clients", stats.numClients)
                writer.field("num_users", stats.numUsers)
            }
        case "history":
            let channel = try string(params, "channel")
            var since: StreamPositionRequest?
            if let value = params["since"] {
                since = StreamPositionRequest(offset: value["offset"]?.int64Value.map { UInt64(max(0, $0)) }, epoch: value["epoch"]?.stringValue)
            }
            let limit = params["limit"]?.int64Value.map { Int($0) } ?? 0
            let result = try await node.history(channel: channel, limit: limit, since: since, reverse: params["reverse"]?.boolValue ?? false)
            return Self.object { Node.writeHistory(result, to: &$0) }
        case "history_remove":
            let channel = try string(params, "channel")
            guard let options = node.rules.options(for: channel) else { throw GatewayError.unknownChannel }
            guard options.historyEnabled else { throw GatewayError.notAvailable }
            try await node.broker.removeHistory(channel: channel)
            return "{}"
        case "channels":
            let pattern = params["pattern"]?.stringValue ?? ""
            let all: [String: Int]
            do {
                all = try await node.directory.channels(localUID: node.id, local: node.hub.channels())
            } catch {
                throw GatewayError.internal
            }
            let channels = all.filter { pattern.isEmpty || Self.glob(pattern, matches: $0.key) }
            return Self.object { writer in
                writer.key("channels")
                writer.beginObject()
                for (name, count) in channels.sorted(by: { $0.key < $1.key }) {
                    writer.key(name)
                    writer.beginObject()
                    writer.field("num_clients", count)
                    writer.endObject()
                }
                writer.endObject()
            }
        case "info":
            let nodes: [NodeInfo]
            do {
                nodes = try await node.directory.nodes(local: node.info)
            } catch {
                throw GatewayError.internal
            }
            return Self.object { writer in
                writer.key("nodes")
                writer.beginArray()
                for info in nodes { info.write(to: &writer) }
                writer.endArray()
            }
        case "batch":
            guard case .array(let commands)? = params["commands"] else { throw GatewayError.badRequest }
            var replies: [String] = []
            for command in commands {
                guard case .object(let members) = command, let (name, commandParams) = members.first, members.count == 1,
                    Self.methods.contains(name), name != "batch"
                else {
                    replies.append(#"{"error":{"code":107,"message":"bad request"}}"#)
                    continue
                }
                do {
                    let result = try await call(method: name, params: commandParams)
                    replies.append(Self.object { $0.rawField(name, result) })
                } catch {
                    replies.append(Self.object { Self.writeError(error, to: &$0) })
                }
            }
            return Self.object { writer in
                writer.key("replies")
                writer.beginArray()
                for reply in replies { writer.raw(reply) }
                writer.endArray()
            }
        default:
            throw GatewayError.methodNotFound
        }
    }

    private func publish(channel: String, params: JSONValue) async throws -> StreamPosition {
        try await awaitCompletion { try startPublish(channel: channel, params: params, completion: $0) }
    }

    /// Checks the parameters and queues the publish; `completion` runs once with its outcome.
    private func startPublish(
        channel: String, params: JSONValue, completion: @escaping @Sendable (Result<StreamPosition, any Error>) -> Void
    ) throws {
        guard let data = params["data"] else { throw GatewayError.badRequest }
        guard node.rules.isValidName(channel) else { throw GatewayError.badRequest }
        guard let options = node.rules.options(for: channel) else { throw GatewayError.unknownChannel }
        var tags: [String: String]?
        if case .object(let members)? = params["tags"] { tags = members.compactMapValues(\.stringValue) }
        node.startPublish(
            channel: channel, data: data.serialized, info: nil, options: options,
            skipHistory: params["skip_history"]?.boolValue ?? false, tags: tags,
            idempotencyKey: params["idempotency_key"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        ) { completion($0.mapError { $0 }) }
    }

    private func control(_ command: ControlCommand) async throws {
        do {
            try await node.broker.publishControl(command)
        } catch {
            throw GatewayError.internal
        }
    }

    private func requirePresence(_ channel: String) throws {
        guard let options = node.rules.options(for: channel) else { throw GatewayError.unknownChannel }
        guard options.presence else { throw GatewayError.notAvailable }
    }

    private func string(_ params: JSONValue, _ key: String) throws -> String {
        guard let value = params[key]?.stringValue, !value.isEmpty else { throw GatewayError.badRequest }
        return value
    }

    static func writePosition(_ position: StreamPosition, to writer: inout JSONWriter) {
        if position.offset > 0 { writer.field("offset", position.offset) }
        if !position.epoch.isEmpty { writer.field("epoch", position.epoch) }
    }

    /// `"error": {code, message}`; anything but a `GatewayError` is answered as internal.
    static func writeError(_ error: any Error, to writer: inout JSONWriter) {
        let failure = error as? GatewayError ?? .internal
        writer.key("error")
        writer.beginObject()
        writer.field("code", failure.code)
        writer.field("message", failure.message)
        writer.endObject()
    }

    static func object(_ body: (inout JSONWriter) -> Void) -> String {
        var writer = JSONWriter()
        writer.beginObject()
        body(&writer)
        writer.endObject()
        return writer.output
    }

    /// `*` matches any run of characters (the `channels` pattern).
    static func glob(_ pattern: String, matches text: String) -> Bool {
        let parts = pattern.split(separator: "*", omittingEmptySubsequences: false)
        guard parts.count > 1 else { return pattern == text }
        var rest = Substring(text)
        for (index, part) in parts.enumerated() {
            if index == 0 {
                guard rest.hasPrefix(part) else { return false }
                rest = rest.dropFirst(part.count)
            } else if index == parts.count - 1 {
                return part.isEmpty || rest.hasSuffix(part)
            } else if let range = rest.range(of: part) {
                rest = rest[range.upperBound...]
            } else {
                return false
            }
        }
        return true
    }
}

func constantTimeEquals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
    guard lhs.count == rhs.count else { return false }
    var difference: UInt8 = 0
    for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
    return difference == 0
}

/// Gathers the outcomes of publishes started together, in their order; hands them over once all
/// are in (at once when there are none).
private final class ResultCollector: Sendable {
    private let state: Mutex<(results: [Result<StreamPosition, any Error>?], missing: Int)>
    private let done: @Sendable ([Result<StreamPosition, any Error>]) -> Void

    init(count: Int, done: @escaping @Sendable ([Result<StreamPosition, any Error>]) -> Void) {
        state = Mutex((Array(repeating: nil, count: count), count))
        self.done = done
        if count == 0 { done([]) }
    }

    func set(_ index: Int, _ result: Result<StreamPosition, any Error>) {
        let all = state.withLock { state -> [Result<StreamPosition, any Error>]? in
            state.results[index] = result
            state.missing -= 1
            return state.missing == 0 ? state.results.map { $0! } : nil
        }
        if let all { done(all) }
    }
}
