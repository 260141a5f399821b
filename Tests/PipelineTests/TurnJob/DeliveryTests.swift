import Channels
import Foundation
import Logging
import Pipeline
import Queue
import RedisClient
import Storage
import SwitchboardCore
import Synchronization
import Testing
import TurnTestSupport
import Turns

@Suite("Reply delivery")
struct DeliveryTests {
    /// The delivery jobs waiting on the `delivery` queue, as reply ids.
    static func queuedDeliveries(_ env: TurnTestEnvironment) async throws -> [Int64] {
        try await env.redis.xrange("queue:delivery").compactMap { entry -> Int64? in
            guard entry.string("name") == DeliveryJob.name, let data = entry.fields["data"] else { return nil }
            return try JSONDecoder().decode(DeliveryJob.self, from: Data(data)).replyId
        }
    }

    static func reply(to message: Message, _ env: TurnTestEnvironment) async throws -> Message {
        try #require(try await env.stores.messages.message(ownerID: message.ownerID, idempotencyKey: Turns.replyKey(for: message.id)))
    }

    /// Counts what it was handed.
    final class CountingDelivery: ChannelDelivery {
        let channels: Set<Channel>
        let delivered = Mutex<[Int64]>([])
        init(_ channels: Set<Channel>) { self.channels = channels }
        func deliver(reply: Message, origin: Message) async throws { delivered.withLock { $0.append(reply.id) } }
    }

    /// A reply to a message from outside the server (email here) is handed over by a job.
    @Test func aCompletedTurnQueuesOneDeliveryEvenWhenItRunsTwice() async throws {
        try await TurnTestEnvironment.with { env in
            let message = try await env.queuedMessage("deliver me", channel: .email)
            let runner = TurnRunnerTests.runner(env)
            try await runner.run(messageID: message.id, logger: TurnTestEnvironment.logger)
            let reply = try await Self.reply(to: message, env)
            #expect(try await Self.queuedDeliveries(env) == [reply.id])
            #expect(reply.deliveredAt == nil, "delivered when the job ran, not before")

            // The worker died after the reply was stored and before the turn was marked done:
            // the redelivered turn runs again, finds the stored reply and queues nothing new.
            #expect(try await env.stores.messages.updateStatus(id: message.id, to: .running, error: nil, from: nil))
            try await runner.run(messageID: message.id, attempt: 2, logger: TurnTestEnvironment.logger)
            #expect(try await Self.queuedDeliveries(env) == [reply.id])
            #expect(try await Self.reply(to: message, env).id == reply.id)
            // And a redelivery of the finished turn queues nothing either.
            try await runner.run(messageID: message.id, attempt: 3, logger: TurnTestEnvironment.logger)
            #expect(try await Self.queuedDeliveries(env) == [reply.id])
        }
    }

    @Test func aReplyStoredWithoutItsDeliveryGetsOneWhenTheTurnIsRedelivered() async throws {
        try await TurnTestEnvironment.with { env in
            let message = try await env.queuedMessage("crash after storing", channel: .email)
            // The worker stored the reply and died before it could queue the delivery.
            #expect(try await env.stores.messages.updateStatus(id: message.id, to: .running, error: nil, from: [.queued]))
            let stored = try await env.stores.messages.insertMessage(NewMessage(
                chatID: message.chatID, ownerID: message.ownerID, role: .assistant, content: "earlier answer", status: .completed,
                channel: message.channel, idempotencyKey: Turns.replyKey(for: message.id), replyToID: message.id))
            #expect(try await Self.queuedDeliveries(env).isEmpty)

            try await TurnRunnerTests.runner(env).run(messageID: message.id, attempt: 2, logger: TurnTestEnvironment.logger)
            #expect(try await Self.queuedDeliveries(env) == [stored.id])
            let entries = try await TurnStreamReader(redis: env.redis).all(messageID: message.id)
            #expect(entries.filter { $0.type == "complete" }.count == 1)
        }
    }

    @Test(arguments: [Channel.web, .email])
    func aFailedTurnQueuesNoDelivery(channel: Channel) async throws {
        try await TurnTestEnvironment.with { env in
            let message = try await env.queuedMessage("/fail now", channel: channel)
            try await TurnRunnerTests.runner(env).run(messageID: message.id, logger: TurnTestEnvironment.logger)
            #expect(try await Self.queuedDeliveries(env).isEmpty)
            #expect(try await env.stores.messages.message(ownerID: message.ownerID, idempotencyKey: Turns.replyKey(for: message.id)) == nil)
        }
    }

    @Test func theDeliveryHandlerMarksTheReplyDeliveredOnce() async throws {
        try await TurnTestEnvironment.with { env in
            let message = try await env.queuedMessage("once please", channel: .email)
            try await TurnRunnerTests.runner(env).run(messageID: message.id, logger: TurnTestEnvironment.logger)
            let reply = try await Self.reply(to: message, env)
            #expect(reply.deliveredAt == nil)

            let counting = CountingDelivery([.email])
            let delivery = DeliveryRunner(messages: env.stores.messages, deliveries: ChannelDeliveries([counting]))
            #expect(try await delivery.run(replyID: reply.id, logger: TurnTestEnvironment.logger) == .delivered)
            let delivered = try #require(try await Self.reply(to: message, env).deliveredAt)
            // A second run (a redelivered job) hands nothing over and keeps the first time.
            #expect(try await delivery.run(replyID: reply.id, logger: TurnTestEnvironment.logger) == .alreadyDelivered)
            #expect(try await Self.reply(to: message, env).deliveredAt == delivered)
            #expect(counting.delivered.withLock { $0 } == [reply.id])
        }
    }

    /// Web chat, the API and the widget read the turn stream and the stored reply: the reply is
    /// delivered as it is stored, with no job, also when the turn runs again.
    @Test(arguments: [Channel.web, .api, .widget])
    func turnStreamRepliesAreDeliveredAsTheyAreStored(channel: Channel) async throws {
        try await TurnTestEnvironment.with { env in
            let message = try await env.queuedMessage("standard", channel: channel)
            let runner = TurnRunnerTests.runner(env)
            try await runner.run(messageID: message.id, logger: TurnTestEnvironment.logger)
            let reply = try await Self.reply(to: message, env)
            let delivered = try #require(reply.deliveredAt)
            #expect(try await Self.queuedDeliveries(env).isEmpty)

            #expect(try await env.stores.messages.updateStatus(id: message.id, to: .running, error: nil, from: nil))
            try await runner.run(messageID: message.id, attempt: 2, logger: TurnTestEnvironment.logger)
            #expect(try await Self.reply(to: message, env).deliveredAt == delivered)
            #expect(try await Self.queuedDeliveries(env).isEmpty)
            // A delivery job left from before (queued by an earlier version) finds it delivered.
            #expect(try await DeliveryRunner(messages: env.stores.messages).run(replyID: reply.id, logger: TurnTestEnvironment.logger) == .alreadyDelivered)
        }
    }

    /// A reply stored undelivered (by an earlier version, which queued a job for every channel)
    /// is recorded as delivered when its turn runs again.
    @Test func anUndeliveredTurnStreamReplyIsDeliveredWhenTheTurnRunsAgain() async throws {
        try await TurnTestEnvironment.with { env in
            let message = try await env.queuedMessage("upgrade")
            #expect(try await env.stores.messages.updateStatus(id: message.id, to: .running, error: nil, from: [.queued]))
            let stored = try await env.stores.messages.insertMessage(NewMessage(
                chatID: message.chatID, ownerID: message.ownerID, role: .assistant, content: "earlier answer", status: .completed,
                channel: message.channel, idempotencyKey: Turns.replyKey(for: message.id), replyToID: message.id))
            #expect(stored.deliveredAt == nil)
            try await TurnRunnerTests.runner(env).run(messageID: message.id, attempt: 2, logger: TurnTestEnvironment.logger)
            #expect(try await Self.reply(to: message, env).deliveredAt != nil)
            #expect(try await Self.queuedDeliveries(env).isEmpty)
        }
    }

    @Test func onlyRepliesCanBeDelivered() async throws {
        try await TurnTestEnvironment.with { env in
            let message = try await env.queuedMessage("not a reply")
            // A user message is not a reply: nothing to deliver, and retrying will not change that.
            await #expect(throws: DeliveryError.self) {
                try await DeliveryRunner(messages: env.stores.messages).run(replyID: message.id, logger: TurnTestEnvironment.logger)
            }
        }
    }

    @Test func aReplyOnAChannelWithoutDelivererLandsInFailed() async throws {
        try await TurnTestEnvironment.with { env in
            let user = try await env.stores.users.createUser(email: "wa\(UInt32.random(in: 0...UInt32.max))@example.com", name: "w", role: .user)
            let message = try await env.stores.messages.startChat(
                title: "whatsapp", externalThreadKey: "+15550100",
                firstMessage: NewMessage(chatID: 0, ownerID: user.id, content: "hola", channel: .whatsapp)
            ).message
            var registry = JobRegistry()
            PipelineJobs.register(in: &registry, responder: EchoResponder(), stores: env.stores, redis: env.redis)
            let worker = try WorkerService(
                client: env.redis, registry: registry,
                configuration: WorkerConfiguration(
                    workerID: "delivery-test-\(UInt32.random(in: 0...UInt32.max))", queues: [Turns.queue, Deliveries.queue],
                    concurrency: 2, healthPort: 0, blockTime: .milliseconds(100)),
                logger: TurnTestEnvironment.logger)
            let running = Task { try await worker.run() }
            let outcome: Result<Void, any Error>
            do {
                try await Turns.enqueue(messageID: message.id, on: JobQueue(client: env.redis))

                let failed = FailedJobs(client: env.redis)
                let deadline = ContinuousClock.now + .seconds(30)
                var dead: [FailedJob] = []
                while dead.isEmpty && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(100))
                    dead = try await failed.list().filter { $0.name == DeliveryJob.name }
                }
                let job = try #require(dead.first, "the delivery never reached the failed stream")
                #expect(job.queue == .delivery)
                #expect(job.attempts == 1, "a missing deliverer is permanent: no retries")
                #expect(job.error.contains("no deliverer for channel 'whatsapp'"))
                // The turn itself completed (its delivery is queued just before its final event)
                // and its reply is stored, undelivered.
                let reader = TurnStreamReader(redis: env.redis)
                var last = try await reader.last(messageID: message.id)
                let finalDeadline = ContinuousClock.now + .seconds(30)
                while last?.isFinal != true && ContinuousClock.now < finalDeadline {
                    try await Task.sleep(for: .milliseconds(50))
                    last = try await reader.last(messageID: message.id)
                }
                #expect(last?.type == "complete")
                #expect(try await Self.reply(to: message, env).deliveredAt == nil)
                outcome = .success(())
            } catch {
                outcome = .failure(error)
            }
            worker.beginStopping()
            running.cancel()
            _ = await running.result
            try outcome.get()
        }
    }
}
