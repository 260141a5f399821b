import AIProviders
import Foundation
import Pipeline
import Storage
import SwitchboardCore
import TestSupport
import Testing
import TurnTestSupport
import Turns

/// The whole pipeline against real MariaDB (task rows, usage) with a scripted provider.
@Suite struct RoutingPipelineTests {
    /// Sort answers say "multi" for messages with " and also "; the planner answers `plan`.
    static func provider(plan: String) -> ScriptedProvider {
        ScriptedProvider { request in
            switch request.slot {
            case .sort:
                let multi = request.messages.last?.content.contains(" and also ") == true
                return .init(text: #"{"topic":"general","language":"en","web_search":false,"multi":\#(multi)}"#)
            case .plan: return .init(text: plan)
            default:
                let system = request.messages.first?.content ?? ""
                if system.hasPrefix("Summarize") { return .init(text: "summary text") }
                if system.hasPrefix("Translate") { return .init(text: "übersetzter Text") }
                return .init(text: "the final answer")
            }
        }
    }

    static func message(_ stores: Stores, _ text: String) async throws -> Message {
        let user = try await stores.users.createUser(email: "\(UUID().uuidString.prefix(8))@example.com", name: "U", role: .user)
        return try await stores.messages.startChat(title: "t", externalThreadKey: nil, firstMessage: NewMessage(chatID: 0, ownerID: user.id, content: text)).message
    }

    @Test func aSimpleMessageStreamsOneChatAnswer() async throws {
        try await TestDatabase.with { stores in
            let pipeline = RoutingPipeline(provider: Self.provider(plan: "{}"), stores: stores, redis: nil)
            let message = try await Self.message(stores, "Tell me something interesting about octopuses")
            let sink = RecordingEventSink()
            let outcome = try await pipeline.run(message: message, sink: sink)
            let events = await sink.events
            #expect(outcome.reply == "the final answer")
            #expect(events.chunks == "the final answer")
            #expect(events.first == .status(.classifying))
            #expect(events.contains(.status(TurnStatus(stage: .classified, topic: "general", language: "en", source: ClassificationSource.sorter.rawValue))))
            #expect(!events.contains { if case .plan = $0 { true } else { false } })
            #expect(outcome.provider == "scripted")
            #expect(outcome.usage.completionTokens > 0)
            let rows = try await stores.tasks.tasks(messageID: message.id)
            #expect(rows.map(\.nodeID) == ["reply"])
            #expect(rows.first?.state == .done)
            #expect(rows.first?.output == "the final answer")
            // One row for the sorter, one for the chat node.
            let usage = try await stores.usage.usage(userID: message.ownerID, since: nil, limit: 10)
            #expect(Set(usage.map(\.model)) == ["scripted-sort", "scripted-chat"])
        }
    }

    /// What the chat model is asked, recorded.
    actor ChatRequests {
        var all: [[ChatMessage]] = []
        func record(_ messages: [ChatMessage]) { all.append(messages) }
    }

    @Test(arguments: [false, true])
    func aStoredMessagesFileAndEarlierMessagesReachTheModel(readWithItsContext: Bool) async throws {
        try await TestDatabase.with { stores in
            let requests = ChatRequests()
            let provider = ScriptedProvider { request in
                if request.slot == .sort { return .init(text: #"{"topic":"general","language":"en","web_search":false,"multi":false}"#) }
                await requests.record(request.messages)
                return .init(text: "the final answer")
            }
            let pipeline = RoutingPipeline(provider: provider, stores: stores, redis: nil)
            let first = try await Self.message(stores, "Which city is the capital of France, please?")
            func add(_ role: MessageRole, _ content: String, _ status: MessageStatus) async throws -> Message {
                try await stores.messages.insertMessage(NewMessage(chatID: first.chatID, ownerID: first.ownerID, role: role, content: content, status: status))
            }
            _ = try await add(.assistant, "Paris is the capital.", .completed)
            _ = try await add(.assistant, "half an answer that failed", .failed)
            let message = try await add(.user, "Please read the attached notes and tell me what you think of them", .queued)
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("notes-\(UUID().uuidString).txt")
            try Data("Quarterly numbers rose by four percent.".utf8).write(to: path)
            defer { try? FileManager.default.removeItem(at: path) }
            let file = try await stores.files.createFile(NewFile(
                ownerID: first.ownerID, chatID: first.chatID, messageID: message.id, name: "notes.txt", mimeType: "text/plain", size: 39,
                sha256: String(repeating: "0", count: 64), storagePath: path.path))

            if readWithItsContext {
                let context = try #require(try await stores.messages.messageContext(id: message.id, historyLimit: 11))
                _ = try await pipeline.run(context: context, sink: RecordingEventSink())
            } else {
                _ = try await pipeline.run(message: message, sink: RecordingEventSink())
            }
            let chat = try #require(await requests.all.last)
            let asked = chat.map(\.content).joined(separator: "\n")
            #expect(asked.contains("Quarterly numbers rose by four percent."), "the attached file's text is in the prompt")
            let earlier = chat.filter { $0.role != .system }.dropLast().map(\.content)
            #expect(earlier == ["Which city is the capital of France, please?", "Paris is the capital."], "the failed reply is not history")
            #expect(try await stores.files.file(id: file.id)?.extractStatus == .done)
        }
    }

    @Test func aMultiIntentMessageRunsThePlannersGraph() async throws {
        let plan = #"{"reply_node":"answer","tasks":[{"id":"sum","capability":"summarize","inputs":{"text":"message"}},{"id":"de","capability":"translate","inputs":{"text":"message"},"params":{"target":"de"}},{"id":"answer","capability":"compose_reply","depends_on":["sum","de"]}]}"#
        try await TestDatabase.with { stores in
            let pipeline = RoutingPipeline(provider: Self.provider(plan: plan), stores: stores, redis: nil)
            let message = try await Self.message(stores, "Summarize this text and also translate it to German: the cat sat on the mat")
            let sink = RecordingEventSink()
            let outcome = try await pipeline.run(message: message, sink: sink)
            let events = await sink.events
            #expect(events.contains(.status(.planning)))
            #expect(events.contains(.plan(TurnPlan(
                nodes: [.init(id: "sum", capability: "summarize", kind: "task"), .init(id: "de", capability: "translate", kind: "task"), .init(id: "answer", capability: "compose_reply", kind: "reply")],
                replyNode: "answer", fallbackReason: nil
            ))))
            #expect(events.contains(.taskChunk(TaskChunk(nodeID: "de", text: "übersetzter "))))
            #expect(events.chunks == "the final answer")
            #expect(outcome.tasks == ["sum": .done, "de": .done, "answer": .done])
            let rows = try await stores.tasks.tasks(messageID: message.id)
            #expect(Set(rows.map(\.nodeID)) == ["sum", "de", "answer"])
            #expect(rows.allSatisfy { $0.state == .done && $0.startedAt != nil && $0.finishedAt != nil })
            #expect(rows.first { $0.nodeID == "answer" }?.dependsOn.sorted() == ["de", "sum"])
        }
    }

    @Test func anInvalidPlanFallsBackAndSaysSo() async throws {
        let cyclic = #"{"reply_node":"a","tasks":[{"id":"a","capability":"chat","depends_on":["b"]},{"id":"b","capability":"chat","depends_on":["a"]}]}"#
        try await TestDatabase.with { stores in
            let pipeline = RoutingPipeline(provider: Self.provider(plan: cyclic), stores: stores, redis: nil)
            let message = try await Self.message(stores, "Do this and also that please")
            let sink = RecordingEventSink()
            let outcome = try await pipeline.run(message: message, sink: sink)
            let events = await sink.events
            let plan = events.compactMap { if case .plan(let plan) = $0 { (plan.nodes, plan.fallbackReason) } else { nil } }.first
            #expect(plan?.0 == [.init(id: "reply", capability: "chat", kind: "reply")])
            #expect(plan?.1?.hasPrefix("cycle") == true)
            #expect(outcome.reply == "the final answer")
        }
    }

    @Test func slashCommandsAndHelpNeedNoModel() async throws {
        try await TestDatabase.with { stores in
            let pipeline = RoutingPipeline(provider: ScriptedProvider { _ in .failure(AIProviderError(.connectionFailed, "down")) }, stores: stores, redis: nil)
            let sink = RecordingEventSink()
            let outcome = try await pipeline.run(turn: TurnInput(messageID: 1, userID: 1, text: "/help"), sink: sink)
            #expect(outcome.reply == HelpCapability.text)
            #expect(await sink.events.chunks == HelpCapability.text)
        }
    }

    @Test func aProviderFailureBecomesATypedPipelineError() async throws {
        try await TestDatabase.with { stores in
            let provider = ScriptedProvider { _ in .failure(AIProviderError(.connectionFailed, "connection refused", attempts: 3)) }
            let pipeline = RoutingPipeline(provider: provider, stores: stores, redis: nil)
            let message = try await Self.message(stores, "Explain how tides work on the Atlantic coast")
            let error = await #expect(throws: PipelineError.self) { _ = try await pipeline.run(message: message, sink: RecordingEventSink()) }
            #expect(error?.code == .providerFailed)
            #expect(error?.message.contains("provider_unreachable") == true)
            #expect(try await stores.tasks.tasks(messageID: message.id).first?.state == .failed)
        }
    }

    @Test func anAttachmentThatCannotBeReadIsAClearError() async throws {
        try await TestDatabase.with { stores in
            let pipeline = RoutingPipeline(provider: Self.provider(plan: "{}"), stores: stores, redis: nil)
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("x-\(UUID().uuidString).png").path
            _ = FileManager.default.createFile(atPath: path, contents: Data([0x89, 0x50, 0x4E, 0x47]))
            defer { try? FileManager.default.removeItem(atPath: path) }
            let turn = TurnInput(messageID: 1, userID: 1, text: "", attachments: [TurnAttachment(name: "photo.png", mimeType: "image/png", path: path)])
            let sink = RecordingEventSink()
            let error = await #expect(throws: PipelineError.self) { _ = try await pipeline.run(turn: turn, sink: sink) }
            #expect(error?.code == .extractionFailed)
            #expect(error?.message.contains("unsupported_file") == true)
            #expect(await sink.events.first == .status(.extracting))
        }
    }

    @Test func stoppingATurnCancelsItPromptly() async throws {
        try await TestDatabase.with { stores in
            let provider = ScriptedProvider(tokenDelay: .milliseconds(20)) { request in
                request.slot == .sort ? .init(text: #"{"topic":"general"}"#) : .init(text: String(repeating: "token ", count: 1000))
            }
            let pipeline = RoutingPipeline(provider: provider, stores: stores, redis: nil)
            let message = try await Self.message(stores, "Write me a very long essay about rivers")
            let sink = RecordingEventSink()
            let turn = Task { try await pipeline.run(message: message, sink: sink) }
            while await sink.events.chunks.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
            let stoppedAt = ContinuousClock.now
            turn.cancel()
            await #expect(throws: CancellationError.self) { _ = try await turn.value }
            // The stop ends the turn mid-answer: the whole answer (1,000 tokens, 20 ms apart) would
            // take 20 s. Within a second on an idle machine; the bound leaves room for a loaded one.
            #expect(ContinuousClock.now - stoppedAt < .seconds(10))
            #expect(await sink.events.chunks.count < 6000)
        }
    }
}

/// End to end with the real models of `scripts/llm`: the shape of the stream, not the words.
@Suite(.enabled(if: LocalModelServer.enabled), .timeLimit(.minutes(30)))
struct RealModelPipelineTests {
    @Test func aTurnStreamsARealAnswer() async throws {
        let redis = try TestRedis.client()
        try await LocalModelServer.withProvider { provider in try await TestDatabase.with { stores in
            let travel = try await stores.topics.createTopic(ownerID: nil, name: "travel", description: "trips", examples: ["recommend a hotel in Rome", "best beaches to visit in summer", "plan a trip to the mountains"])
            _ = travel
            var configuration = PipelineConfiguration()
            configuration.maximumOutputTokens = 48
            let pipeline = RoutingPipeline(provider: provider, stores: stores, redis: redis, configuration: configuration)
            try await pipeline.start()
            let user = try await stores.users.createUser(email: "real@example.com", name: "R", role: .user)
            let message = try await stores.messages.startChat(title: "t", externalThreadKey: nil, firstMessage: NewMessage(chatID: 0, ownerID: user.id, content: "Which beaches should I visit this summer in Spain?")).message
            let sink = RecordingEventSink()
            let outcome = try await pipeline.run(message: message, sink: sink)
            await pipeline.shutdown()
            let events = await sink.events
            #expect(outcome.classification.source == .embedding)
            #expect(outcome.classification.topic == "travel")
            #expect(outcome.model == "smollm2-135m")
            let chunks = events.filter { if case .chunk = $0 { true } else { false } }
            #expect(chunks.count > 1)
            #expect(events.chunks == outcome.reply)
            #expect(!outcome.reply.isEmpty)
            #expect(outcome.usage.promptTokens > 0 && outcome.usage.completionTokens > 0)
            #expect(outcome.usage.completionTokens <= 48)
            let usage = try await stores.usage.usage(userID: user.id, since: nil, limit: 10)
            #expect(usage.first?.model == "smollm2-135m")
        } }
        await TestRedis.discard(redis)
    }
}
