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

/// Every channel's way into the turn path, against real Redis and MariaDB.
@Suite("Channel intake")
struct ChannelIntakeTests {
    static func intake(_ env: TurnTestEnvironment, jobs: (any JobProducer)? = nil) -> ChannelIntake {
        ChannelIntake(stores: env.stores, jobs: jobs ?? JobQueue(client: env.redis), redis: env.redis)
    }

    static func user(_ env: TurnTestEnvironment) async throws -> User {
        try await env.stores.users.createUser(email: "u\(UInt32.random(in: 0...UInt32.max))@example.com", name: "u", role: .user)
    }

    @Test func aMessageIsStoredQueuedAndItsTurnQueued() async throws {
        try await TurnTestEnvironment.with { env in
            let user = try await Self.user(env)
            let accepted = try await Self.intake(env).accept(
                InboundMessage(ownerID: user.id, channel: .web, content: "hello", chat: .new(title: nil)), logger: TurnTestEnvironment.logger)
            #expect(!accepted.isDuplicate)
            #expect(accepted.message.status == .queued)
            #expect(try await env.stores.chats.chat(id: accepted.message.chatID, ownerID: user.id)?.title == "hello")
            #expect(try await env.queuedTurnIDs() == [accepted.message.id])
        }
    }

    @Test func aRetriedDeliveryIsStoredAndQueuedOnce() async throws {
        try await TurnTestEnvironment.with { env in
            let user = try await Self.user(env)
            let inbound = InboundMessage(
                ownerID: user.id, channel: .whatsapp, content: "hola", chat: .thread(key: "+15550100", title: nil), externalID: "wamid.1")
            let first = try await Self.intake(env).accept(inbound, logger: TurnTestEnvironment.logger)
            let again = try await Self.intake(env).accept(inbound, logger: TurnTestEnvironment.logger)
            #expect(again.isDuplicate)
            #expect(again.message.id == first.message.id)
            #expect(try await env.queuedTurnIDs() == [first.message.id])
        }
    }

    @Test func twoOwnersMayReceiveTheSameChannelMessage() async throws {
        try await TurnTestEnvironment.with { env in
            // One email sent to two tenants' support addresses carries one Message-ID.
            for _ in 0..<2 {
                let user = try await Self.user(env)
                let accepted = try await Self.intake(env).accept(
                    InboundMessage(ownerID: user.id, channel: .email, content: "hi both", chat: .thread(key: "t", title: nil), externalID: "<m1@x>"),
                    logger: TurnTestEnvironment.logger)
                #expect(!accepted.isDuplicate)
                #expect(accepted.message.ownerID == user.id)
            }
        }
    }

    @Test func oneExternalConversationKeepsOneChat() async throws {
        try await TurnTestEnvironment.with { env in
            let user = try await Self.user(env)
            func send(_ text: String, from key: String, id: String) async throws -> Message {
                try await Self.intake(env).accept(
                    InboundMessage(ownerID: user.id, channel: .whatsapp, content: text, chat: .thread(key: key, title: nil), externalID: id),
                    logger: TurnTestEnvironment.logger
                ).message
            }
            let first = try await send("one", from: "+15550100", id: "a")
            let second = try await send("two", from: "+15550100", id: "b")
            let other = try await send("three", from: "+15550199", id: "c")
            #expect(second.chatID == first.chatID)
            #expect(other.chatID != first.chatID)
            #expect(try await env.stores.chats.chat(ownerID: user.id, channel: .whatsapp, externalThreadKey: "+15550100")?.id == first.chatID)
        }
    }

    @Test func anotherUsersChatIsNotFoundAndNothingIsStored() async throws {
        try await TurnTestEnvironment.with { env in
            let owner = try await Self.user(env)
            let stranger = try await Self.user(env)
            let chat = try await env.stores.chats.createChat(ownerID: owner.id, title: "mine", channel: .web, externalThreadKey: nil)
            let error = await #expect(throws: SwitchboardError.self) {
                try await Self.intake(env).accept(
                    InboundMessage(ownerID: stranger.id, channel: .web, content: "hi", chat: .existing(chat.id)), logger: TurnTestEnvironment.logger)
            }
            #expect(error?.status == 404)
            #expect(try await env.stores.messages.messages(chatID: chat.id, ownerID: owner.id, limit: 10, beforeID: nil, afterID: nil).isEmpty)
            #expect(try await env.queuedTurnIDs().isEmpty)
        }
    }

    /// A queue that cannot be reached (an in-memory stand-in for the seam).
    struct UnreachableQueue: JobProducer {
        func enqueue<P: JobPayload>(_ job: P, on queue: QueueName, options: EnqueueOptions) async throws -> JobID {
            throw RedisError.connectionClosed
        }
    }

    @Test func whenTheTurnCannotBeQueuedTheMessageIsFailedAndItsStreamEnded() async throws {
        try await TurnTestEnvironment.with { env in
            let user = try await Self.user(env)
            let error = await #expect(throws: SwitchboardError.self) {
                try await Self.intake(env, jobs: UnreachableQueue()).accept(
                    InboundMessage(ownerID: user.id, channel: .web, content: "hi", chat: .new(title: nil)), logger: TurnTestEnvironment.logger)
            }
            #expect(error?.status == 503)
            let chat = try #require(try await env.stores.chats.chats(ownerID: user.id, limit: 1, beforeID: nil).first)
            let stored = try #require(try await env.stores.messages.messages(chatID: chat.id, ownerID: user.id, limit: 1, beforeID: nil, afterID: nil).first)
            #expect(stored.status == .failed)
            let last = try await TurnStreamReader(redis: env.redis).last(messageID: stored.id)
            #expect(last?.event == TurnEnding.queueUnavailable.event)
        }
    }
}
