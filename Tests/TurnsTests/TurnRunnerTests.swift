import Foundation
import Logging
import RedisClient
import Storage
import SwitchboardCore
import Testing
@testable import Turns

@Suite("Turn runner")
struct TurnRunnerTests {
    static func runner(_ env: TestEnvironment, responder: any TurnResponder = EchoResponder()) -> TurnRunner {
        TurnRunner(dependencies: TurnDependencies(
            redis: env.redis, messages: env.stores.messages, responder: responder,
            cancelPollInterval: .milliseconds(20)))
    }

    @Test func aTurnStoresItsReplyAndEndsWithOneComplete() async throws {
        try await TestEnvironment.with { env in
            let message = try await env.queuedMessage("hi there")
            let runner = Self.runner(env)
            try await runner.run(messageID: message.id, logger: TestEnvironment.logger)
            // Redelivered after it finished: not run again.
            try await runner.run(messageID: message.id, attempt: 2, logger: TestEnvironment.logger)

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
        try await TestEnvironment.with { env in
            let message = try await env.queuedMessage("again")
            // A worker died after marking it running and streaming a little.
            #expect(try await env.stores.messages.updateStatus(id: message.id, to: .running, error: nil, from: [.queued]))
            let writer = TurnStreamWriter(redis: env.redis, messageID: message.id)
            try await writer.append(.status(.started))
            try await writer.append(.chunk("You "))
            try await Self.runner(env).run(messageID: message.id, attempt: 2, logger: TestEnvironment.logger)
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
        try await TestEnvironment.with { env in
            let message = try await env.queuedMessage("lost end")
            #expect(try await env.stores.messages.updateStatus(id: message.id, to: .completed, error: nil, from: nil))
            try await Self.runner(env).run(messageID: message.id, attempt: 2, logger: TestEnvironment.logger)
            let entries = try await TurnStreamReader(redis: env.redis).all(messageID: message.id)
            #expect(entries.map(\.type) == ["complete"])
        }
    }

    @Test func aResponderFailureEndsTheTurnWithAnError() async throws {
        try await TestEnvironment.with { env in
            let message = try await env.queuedMessage("/fail please")
            try await Self.runner(env).run(messageID: message.id, logger: TestEnvironment.logger)
            let last = try await TurnStreamReader(redis: env.redis).last(messageID: message.id)
            #expect(last?.event == .error(code: "responder_failed", message: "the responder was asked to fail"))
            #expect(try await env.stores.messages.message(id: message.id)?.status == .failed)
        }
    }

    @Test func anInfrastructureErrorIsRetriedUntilTheLastAttempt() async throws {
        struct Broken: TurnResponder {
            func respond(to request: TurnRequest, emitter: TurnEmitter) async throws -> TurnReply {
                throw RedisError.connectionClosed
            }
        }
        try await TestEnvironment.with { env in
            let message = try await env.queuedMessage("x")
            let runner = Self.runner(env, responder: Broken())
            await #expect(throws: RedisError.self) {
                try await runner.run(messageID: message.id, attempt: 1, isLastAttempt: false, logger: TestEnvironment.logger)
            }
            #expect(try await env.stores.messages.message(id: message.id)?.status == .running)
            try await runner.run(messageID: message.id, attempt: 2, isLastAttempt: true, logger: TestEnvironment.logger)
            #expect(try await env.stores.messages.message(id: message.id)?.status == .failed)
            #expect(try await TurnStreamReader(redis: env.redis).last(messageID: message.id)?.type == "error")
        }
    }

    @Test func aStopRequestCancelsTheResponder() async throws {
        try await TestEnvironment.with { env in
            let message = try await env.queuedMessage(Array(repeating: "w", count: 500).joined(separator: " "))
            let runner = Self.runner(env, responder: EchoResponder(chunkDelay: .milliseconds(10)))
            async let run: Void = runner.run(messageID: message.id, logger: TestEnvironment.logger)
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
    @Test func aTurnWhoseChatIsDeletedMidwayEndsQuietly() async throws {
        try await TestEnvironment.with { env in
            let message = try await env.queuedMessage("a b c d e f g h i j")
            let runner = TurnRunnerTests.runner(env, responder: EchoResponder(chunkDelay: .milliseconds(30)))
            async let run: Void = runner.run(messageID: message.id, isLastAttempt: false, logger: TestEnvironment.logger)
            try await Task.sleep(for: .milliseconds(100))
            #expect(try await env.stores.chats.deleteChat(id: message.chatID, ownerID: message.ownerID))
            try await run  // no error: the queue does not retry a turn that has nothing left to answer
            #expect(try await env.stores.messages.message(id: message.id) == nil)
        }
    }
}
