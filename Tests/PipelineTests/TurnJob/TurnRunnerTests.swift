import AIProviders
import Channels
import Foundation
import Logging
import Pipeline
import Queue
import RedisClient
import Storage
import SwitchboardCore
import Testing
import TurnTestSupport
import Turns

@Suite("Turn runner")
struct TurnRunnerTests {
    static func runner(_ env: TurnTestEnvironment, responder: any TurnResponder = EchoResponder()) -> TurnRunner {
        TurnRunner(dependencies: TurnJobDependencies(
            redis: env.redis, messages: env.stores.messages, responder: responder,
            cancelPollInterval: .milliseconds(20)))
    }

    @Test func aTurnStoresItsReplyAndEndsWithOneComplete() async throws {
        try await TurnTestEnvironment.with { env in
            let message = try await env.queuedMessage("hi there")
            let runner = Self.runner(env)
            try await runner.run(messageID: message.id, logger: TurnTestEnvironment.logger)
            // Redelivered after it finished: not run again.
            try await runner.run(messageID: message.id, attempt: 2, logger: TurnTestEnvironment.logger)

            let entries = try await TurnStreamReader(redis: env.redis).all(messageID: message.id)
            #expect(entries.first?.event == .status(TurnStatus(stage: .started, attempt: 1)))
            #expect(entries.filter { $0.type == "complete" }.count == 1)
            #expect(entries.last?.type == "complete")
            let stored = try #require(try await env.stores.messages.message(id: message.id))
            #expect(stored.status == .completed)
            let reply = try #require(try await env.stores.messages.message(ownerID: message.ownerID, idempotencyKey: Turns.replyKey(for: message.id)))
            #expect(reply.role == .assistant)
            #expect(reply.replyToID == message.id)
            #expect(reply.content == EchoResponder.reply(to: "hi there"))
            if case .complete(let completion) = entries.last?.event {
                #expect(completion.replyId == reply.id)
                #expect(completion.usage?.completionTokens == 4)
            } else {
                Issue.record("no complete event")
            }
            let all = try await env.stores.messages.messages(chatID: message.chatID, ownerID: message.ownerID, limit: 10, beforeID: nil, afterID: nil)
            #expect(all.count == 2)
        }
    }

    @Test func aTurnRedeliveredMidwayRestartsAndStillEndsOnce() async throws {
        try await TurnTestEnvironment.with { env in
            let message = try await env.queuedMessage("again")
            // A worker died after marking it running and streaming a little.
            #expect(try await env.stores.messages.updateStatus(id: message.id, to: .running, error: nil, from: [.queued]))
            let writer = TurnStreamWriter(redis: env.redis, messageID: message.id)
            try await writer.append(.status(.started))
            try await writer.append(.chunk("You "))
            try await Self.runner(env).run(messageID: message.id, attempt: 2, logger: TurnTestEnvironment.logger)
            let types = try await TurnStreamReader(redis: env.redis).all(messageID: message.id).map(\.type)
            #expect(types.filter { $0 == "complete" }.count == 1)
            let statuses = try await TurnStreamReader(redis: env.redis).all(messageID: message.id).compactMap { entry -> TurnStatus.Stage? in
                if case .status(let status) = entry.event { return status.stage }
                return nil
            }
            #expect(statuses.contains(.restarted))
        }
    }

    @Test func aFinishedTurnWhoseFinalEventWasLostGetsItOnRedelivery() async throws {
        try await TurnTestEnvironment.with { env in
            let message = try await env.queuedMessage("lost end")
            #expect(try await env.stores.messages.updateStatus(id: message.id, to: .completed, error: nil, from: nil))
            try await Self.runner(env).run(messageID: message.id, attempt: 2, logger: TurnTestEnvironment.logger)
            let entries = try await TurnStreamReader(redis: env.redis).all(messageID: message.id)
            #expect(entries.map(\.type) == ["complete"])
        }
    }

    @Test func aResponderFailureEndsTheTurnWithAnError() async throws {
        try await TurnTestEnvironment.with { env in
            let message = try await env.queuedMessage("/fail please")
            try await Self.runner(env).run(messageID: message.id, logger: TurnTestEnvironment.logger)
            let last = try await TurnStreamReader(redis: env.redis).last(messageID: message.id)
            #expect(last?.event == .error(code: "responder_failed", message: "the responder was asked to fail"))
            #expect(try await env.stores.messages.message(id: message.id)?.status == .failed)
        }
    }

    @Test func anInfrastructureErrorIsRetriedUntilTheLastAttempt() async throws {
        struct Broken: TurnResponder {
            var earlierMessages: Int { 0 }
            func respond(to request: TurnRequest, events: any TurnEventSink) async throws -> TurnOutcome {
                throw RedisError.connectionClosed
            }
        }
        try await TurnTestEnvironment.with { env in
            let message = try await env.queuedMessage("x")
            let runner = Self.runner(env, responder: Broken())
            await #expect(throws: RedisError.self) {
                try await runner.run(messageID: message.id, attempt: 1, isLastAttempt: false, logger: TurnTestEnvironment.logger)
            }
            #expect(try await env.stores.messages.message(id: message.id)?.status == .running)
            try await runner.run(messageID: message.id, attempt: 2, isLastAttempt: true, logger: TurnTestEnvironment.logger)
            #expect(try await env.stores.messages.message(id: message.id)?.status == .failed)
            #expect(try await TurnStreamReader(redis: env.redis).last(messageID: message.id)?.type == "error")
        }
    }

    @Test func aStopRequestCancelsTheResponder() async throws {
        try await TurnTestEnvironment.with { env in
            let message = try await env.queuedMessage(Array(repeating: "w", count: 500).joined(separator: " "))
            let runner = Self.runner(env, responder: EchoResponder(chunkDelay: .milliseconds(10)))
            async let run: Void = runner.run(messageID: message.id, logger: TurnTestEnvironment.logger)
            try await Task.sleep(for: .milliseconds(100))
            try await TurnCancellation(redis: env.redis).request(messageID: message.id)
            try await run
            let entries = try await TurnStreamReader(redis: env.redis).all(messageID: message.id)
            #expect(entries.last?.event == .error(code: "cancelled", message: "stopped by the user"))
            #expect(entries.filter(\.isFinal).count == 1)
            #expect(try await env.stores.messages.message(id: message.id)?.status == .cancelled)
            #expect(try await env.stores.messages.message(ownerID: message.ownerID, idempotencyKey: Turns.replyKey(for: message.id)) == nil)
        }
    }
}

@Suite("Turn runner, deleted chats")
struct TurnRunnerDeletionTests {
    /// The run ends without an error (the queue does not retry a turn with nothing left to
    /// answer), and a client still reading the stream sees it end.
    /// Streams one chunk, then holds the turn until the test lets it finish: the chat is deleted
    /// while the turn is surely still running, however loaded the machine is.
    struct HeldResponder: TurnResponder {
        let release: AsyncStream<Void>
        var earlierMessages: Int { 0 }
        func respond(to request: TurnRequest, events: any TurnEventSink) async throws -> TurnOutcome {
            try await events.emit(.chunk("first "))
            for await _ in release { break }
            return TurnOutcome(
                reply: "first answer", classification: Classification(topic: "held", source: .fallback), provider: "held", model: "held-1",
                usage: TokenUsage(promptTokens: 1, completionTokens: 2), tasks: [:])
        }
    }

    @Test func aTurnWhoseChatIsDeletedMidwayEndsItsStreamWithMessageDeleted() async throws {
        try await TurnTestEnvironment.with { env in
            let message = try await env.queuedMessage("a b c d e f g h i j")
            let (release, releaseNow) = AsyncStream<Void>.makeStream()
            let runner = TurnRunnerTests.runner(env, responder: HeldResponder(release: release))
            async let run: Void = runner.run(messageID: message.id, isLastAttempt: false, logger: TurnTestEnvironment.logger)
            // Deleted once the reply has begun to stream.
            let reader = TurnStreamReader(redis: env.redis)
            var cursor = "0-0"
            streaming: while true {
                let entries = try await reader.read(messageID: message.id, after: cursor, block: .seconds(10))
                try #require(!entries.isEmpty, "no chunk within 10 s")
                for entry in entries {
                    cursor = entry.id
                    if entry.type == "chunk" { break streaming }
                }
            }
            #expect(try await env.stores.chats.deleteChat(id: message.chatID, ownerID: message.ownerID))
            releaseNow.yield()
            releaseNow.finish()
            try await run
            #expect(try await env.stores.messages.message(id: message.id) == nil)
            let entries = try await reader.all(messageID: message.id)
            #expect(entries.contains { $0.type == "chunk" })
            #expect(entries.last?.event == TurnEnding.deleted.event)
            #expect(entries.filter(\.isFinal).count == 1)
        }
    }

    @Test func aTurnWhoseChatWasDeletedWhileQueuedEndsItsStreamWithMessageDeleted() async throws {
        try await TurnTestEnvironment.with { env in
            let message = try await env.queuedMessage("never answered")
            #expect(try await env.stores.chats.deleteChat(id: message.chatID, ownerID: message.ownerID))
            try await TurnRunnerTests.runner(env).run(messageID: message.id, logger: TurnTestEnvironment.logger)
            let entries = try await TurnStreamReader(redis: env.redis).all(messageID: message.id)
            #expect(entries.map(\.type) == ["error"])
            #expect(entries.last?.event == TurnEnding.deleted.event)
        }
    }
}

/// The database goes away while a turn stores its reply (scripts/faults, a MariaDB restart): the
/// turn must not be taken for deleted; the job is retried and the turn completes once.
@Suite("Turn runner, the database lost at the finish")
struct TurnRunnerDatabaseLossTests {
    @Test func aDatabaseLostWhileStoringTheReplyRetriesInsteadOfEndingAsDeleted() async throws {
        try await TurnTestEnvironment.with { env in
            let message = try await env.queuedMessage("answer me after the restart")
            let store = DatabaseLostAtReply(base: env.stores.messages)
            let runner = TurnRunner(dependencies: TurnJobDependencies(
                redis: env.redis, messages: store, responder: EchoResponder(), cancelPollInterval: .milliseconds(20)))
            await #expect(throws: DatabaseError.self) {
                try await runner.run(messageID: message.id, attempt: 1, isLastAttempt: false, logger: TurnTestEnvironment.logger)
            }
            let reader = TurnStreamReader(redis: env.redis)
            #expect(try await reader.all(messageID: message.id).filter(\.isFinal).isEmpty, "no final event: the turn is not over")
            #expect(try await env.stores.messages.message(id: message.id)?.status == .running)

            // The database is back; the redelivered job finishes the turn, once.
            store.heal()
            try await runner.run(messageID: message.id, attempt: 2, isLastAttempt: false, logger: TurnTestEnvironment.logger)
            let entries = try await reader.all(messageID: message.id)
            #expect(entries.filter(\.isFinal).map(\.type) == ["complete"])
            let all = try await env.stores.messages.messages(chatID: message.chatID, ownerID: message.ownerID, limit: 10, beforeID: nil, afterID: nil)
            #expect(all.filter { $0.role == .assistant }.count == 1)
            #expect(try await env.stores.messages.message(id: message.id)?.status == .completed)
        }
    }
}

/// The real message store, except that from the reply's insert on every call fails as a lost
/// MariaDB connection does, until `heal()`.
private final class DatabaseLostAtReply: MessageStore, @unchecked Sendable {
    let base: any MessageStore
    private let lock = NSLock()
    private var state = 0  // 0 up, 1 down, 2 healed

    init(base: any MessageStore) { self.base = base }

    func heal() { lock.withLock { state = 2 } }

    private func check() throws {
        if lock.withLock({ state == 1 }) {
            throw DatabaseError(code: .connectionLost, errorNumber: 2013, sqlState: "HY000", message: "Lost connection to server during query")
        }
    }

    func insertMessage(_ message: NewMessage) async throws -> Message {
        if message.role == .assistant { lock.withLock { if state == 0 { state = 1 } } }
        try check()
        return try await base.insertMessage(message)
    }
    func updateStatus(id: Int64, to status: MessageStatus, error: String?, from: Set<MessageStatus>?) async throws -> Bool {
        try check()
        return try await base.updateStatus(id: id, to: status, error: error, from: from)
    }
    func startChat(title: String, externalThreadKey: String?, firstMessage message: NewMessage) async throws -> (chat: Chat, message: Message) {
        try check()
        return try await base.startChat(title: title, externalThreadKey: externalThreadKey, firstMessage: message)
    }
    func message(id: Int64, ownerID: Int64) async throws -> Message? { try check(); return try await base.message(id: id, ownerID: ownerID) }
    func message(id: Int64) async throws -> Message? { try check(); return try await base.message(id: id) }
    func message(ownerID: Int64, channel: Channel, externalID: String) async throws -> Message? {
        try check()
        return try await base.message(ownerID: ownerID, channel: channel, externalID: externalID)
    }
    func recordSent(id: Int64, externalID: String) async throws -> Bool { try check(); return try await base.recordSent(id: id, externalID: externalID) }
    func raiseDeliveryStatus(ownerID: Int64, channel: Channel, externalID: String, to status: DeliveryStatus) async throws -> Bool {
        try check()
        return try await base.raiseDeliveryStatus(ownerID: ownerID, channel: channel, externalID: externalID, to: status)
    }
    func message(ownerID: Int64, idempotencyKey: String) async throws -> Message? {
        try check()
        return try await base.message(ownerID: ownerID, idempotencyKey: idempotencyKey)
    }
    func messageContext(id: Int64, historyLimit: Int) async throws -> MessageContext? {
        try check()
        return try await base.messageContext(id: id, historyLimit: historyLimit)
    }
    func messageAndOrigin(id: Int64) async throws -> (message: Message, origin: Message?)? { try check(); return try await base.messageAndOrigin(id: id) }
    func messages(chatID: Int64, ownerID: Int64, limit: Int, beforeID: Int64?, afterID: Int64?) async throws -> [Message] {
        try check()
        return try await base.messages(chatID: chatID, ownerID: ownerID, limit: limit, beforeID: beforeID, afterID: afterID)
    }
    func queuedMessageIDs(createdBefore: Date, limit: Int) async throws -> [Int64] {
        try check()
        return try await base.queuedMessageIDs(createdBefore: createdBefore, limit: limit)
    }
    func completeTurn(id: Int64, topic: String?, language: String?) async throws -> Bool {
        try check()
        return try await base.completeTurn(id: id, topic: topic, language: language)
    }
    func markDelivered(id: Int64) async throws -> Bool { try check(); return try await base.markDelivered(id: id) }
    func updateContent(id: Int64, content: String) async throws -> Bool { try check(); return try await base.updateContent(id: id, content: content) }
    func deleteMessage(id: Int64, ownerID: Int64) async throws -> Bool { try check(); return try await base.deleteMessage(id: id, ownerID: ownerID) }
}

/// A stop request that lands after the worker read the message but before its `queued → running`
/// commit: the api ends the stream, and the worker's run must add nothing after that end.
@Suite("Turn runner, a stop racing the claim")
struct TurnRunnerClaimRaceTests {
    @Test func aStopJustBeforeTheClaimEndsTheTurnOnceWithNothingAfter() async throws {
        try await TurnTestEnvironment.with { env in
            let message = try await env.queuedMessage("please explain the tides in some detail")
            // What the api's stop route does for a queued turn, run just before the worker's claim.
            let stop: @Sendable () async throws -> Void = {
                try await TurnCancellation(redis: env.redis).request(messageID: message.id)
                #expect(try await env.stores.messages.updateStatus(id: message.id, to: .cancelled, error: "stopped by the user", from: [.queued]))
                try await TurnStreamWriter(redis: env.redis, messageID: message.id).append(.error(code: "cancelled", message: "stopped by the user"))
            }
            let runner = TurnRunner(dependencies: TurnJobDependencies(
                redis: env.redis, messages: StopBeforeClaim(base: env.stores.messages, stop: stop), responder: EchoResponder(),
                cancelPollInterval: .milliseconds(20)))
            try await runner.run(messageID: message.id, logger: TurnTestEnvironment.logger)

            let entries = try await TurnStreamReader(redis: env.redis).all(messageID: message.id)
            #expect(entries.map(\.type) == ["error"], "the stop's end is the whole stream: no `started`, no chunk after it")
            #expect(try await env.stores.messages.message(id: message.id)?.status == .cancelled)
            #expect(try await env.stores.messages.message(ownerID: message.ownerID, idempotencyKey: Turns.replyKey(for: message.id)) == nil)
        }
    }
}

/// The real message store, running `stop` before the first `queued → running` update goes through.
private final class StopBeforeClaim: MessageStore, @unchecked Sendable {
    let base: any MessageStore
    let stop: @Sendable () async throws -> Void

    init(base: any MessageStore, stop: @escaping @Sendable () async throws -> Void) {
        self.base = base
        self.stop = stop
    }

    func updateStatus(id: Int64, to status: MessageStatus, error: String?, from: Set<MessageStatus>?) async throws -> Bool {
        if status == .running, from == [.queued] { try await stop() }
        return try await base.updateStatus(id: id, to: status, error: error, from: from)
    }

    func insertMessage(_ message: NewMessage) async throws -> Message { try await base.insertMessage(message) }
    func startChat(title: String, externalThreadKey: String?, firstMessage message: NewMessage) async throws -> (chat: Chat, message: Message) {
        try await base.startChat(title: title, externalThreadKey: externalThreadKey, firstMessage: message)
    }
    func message(id: Int64, ownerID: Int64) async throws -> Message? { try await base.message(id: id, ownerID: ownerID) }
    func message(id: Int64) async throws -> Message? { try await base.message(id: id) }
    func message(ownerID: Int64, channel: Channel, externalID: String) async throws -> Message? {
        try await base.message(ownerID: ownerID, channel: channel, externalID: externalID)
    }
    func recordSent(id: Int64, externalID: String) async throws -> Bool { try await base.recordSent(id: id, externalID: externalID) }
    func raiseDeliveryStatus(ownerID: Int64, channel: Channel, externalID: String, to status: DeliveryStatus) async throws -> Bool {
        try await base.raiseDeliveryStatus(ownerID: ownerID, channel: channel, externalID: externalID, to: status)
    }
    func message(ownerID: Int64, idempotencyKey: String) async throws -> Message? { try await base.message(ownerID: ownerID, idempotencyKey: idempotencyKey) }
    func messageContext(id: Int64, historyLimit: Int) async throws -> MessageContext? { try await base.messageContext(id: id, historyLimit: historyLimit) }
    func messageAndOrigin(id: Int64) async throws -> (message: Message, origin: Message?)? { try await base.messageAndOrigin(id: id) }
    func messages(chatID: Int64, ownerID: Int64, limit: Int, beforeID: Int64?, afterID: Int64?) async throws -> [Message] {
        try await base.messages(chatID: chatID, ownerID: ownerID, limit: limit, beforeID: beforeID, afterID: afterID)
    }
    func queuedMessageIDs(createdBefore: Date, limit: Int) async throws -> [Int64] { try await base.queuedMessageIDs(createdBefore: createdBefore, limit: limit) }
    func completeTurn(id: Int64, topic: String?, language: String?) async throws -> Bool { try await base.completeTurn(id: id, topic: topic, language: language) }
    func markDelivered(id: Int64) async throws -> Bool { try await base.markDelivered(id: id) }
    func updateContent(id: Int64, content: String) async throws -> Bool { try await base.updateContent(id: id, content: content) }
    func deleteMessage(id: Int64, ownerID: Int64) async throws -> Bool { try await base.deleteMessage(id: id, ownerID: ownerID) }
}
