/// The intake's additions for the OpenAI-compatible endpoint and the generic webhook, against real
/// Redis and MariaDB: a chat that arrives with its history, and what a channel records beside a
/// message before its turn is queued (a failure there queues nothing).
import Channels
import Foundation
import Logging
import Queue
import RedisClient
import Storage
import SwitchboardCore
import Testing
import TurnTestSupport
import Turns

@Suite("Channel intake: history and channel records")
struct ChannelIntakeHistoryTests {
    struct Refused: Error {}

    @Test func aChatWithHistoryStoresItAnsweredBeforeTheQueuedQuestion() async throws {
        try await TurnTestEnvironment.with { env in
            let user = try await ChannelIntakeTests.user(env)
            let accepted = try await ChannelIntakeTests.intake(env).accept(
                InboundMessage(
                    ownerID: user.id, channel: .api, content: "and now?",
                    chat: .newWithHistory(title: nil, history: [.init(role: .user, content: "first"), .init(role: .assistant, content: "answer")])),
                logger: TurnTestEnvironment.logger)
            let stored = try await env.stores.messages.messages(chatID: accepted.message.chatID, ownerID: user.id, limit: 10, beforeID: nil, afterID: nil)
                .sorted { $0.id < $1.id }
            #expect(stored.map(\.content) == ["first", "answer", "and now?"])
            #expect(stored.map(\.status) == [.completed, .completed, .queued])
            #expect(try await env.queuedTurnIDs() == [accepted.message.id], "only the question is a turn")
            let context = try #require(try await env.stores.messages.messageContext(id: accepted.message.id, historyLimit: 10))
            #expect(context.earlier.map(\.content) == ["answer", "first"], "the turn reads the history")
        }
    }

    @Test func aFailedChannelRecordQueuesNothingAndEndsTheStream() async throws {
        try await TurnTestEnvironment.with { env in
            let user = try await ChannelIntakeTests.user(env)
            await #expect(throws: Refused.self) {
                try await ChannelIntakeTests.intake(env).accept(
                    InboundMessage(ownerID: user.id, channel: .webhook, content: "hi", chat: .new(title: nil)), logger: TurnTestEnvironment.logger,
                    beforeQueuing: { _ in throw Refused() })
            }
            let chat = try #require(try await env.stores.chats.chats(ownerID: user.id, limit: 1, beforeID: nil).first)
            let message = try #require(try await env.stores.messages.messages(chatID: chat.id, ownerID: user.id, limit: 1, beforeID: nil, afterID: nil).first)
            #expect(message.status == .failed)
            #expect(try await env.queuedTurnIDs().isEmpty)
            #expect(try await TurnStreamReader(redis: env.redis).last(messageID: message.id)?.isFinal == true)
        }
    }
}
