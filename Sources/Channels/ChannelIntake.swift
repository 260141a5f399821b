/// Where every channel's messages enter the turn path: an `InboundMessage` is stored as a
/// `queued` user message in its chat (found or started) and its turn is queued on the `ai` queue.
/// A message a channel delivers twice (same `externalID`) is stored and queued once. A user past
/// a quota (messages today, provider tokens this month) gets 429 `quota_exceeded` and nothing is
/// stored. A message the channel marks ignored (`ignoredReason`: an auto-reply) is stored
/// `cancelled` and no turn is queued for it.
import Foundation
import Logging
import Queue
import RedisClient
import Storage
import SwitchboardCore
import Turns

public struct ChannelIntake: Sendable {
    public let stores: Stores
    public let jobs: any JobProducer
    public let redis: RedisClient
    public let stream: TurnStreamSettings
    /// The configured quotas, which a user's own (`user_quotas`) override.
    public let quotas: QuotaLimits

    public init(
        stores: Stores, jobs: any JobProducer, redis: RedisClient, stream: TurnStreamSettings = .init(), quotas: QuotaLimits = .unlimited
    ) {
        self.stores = stores
        self.jobs = jobs
        self.redis = redis
        self.stream = stream
        self.quotas = quotas
    }

    /// What became of an inbound message.
    public struct Accepted: Sendable, Equatable {
        public var message: Message
        /// The channel had delivered this message before: nothing new was stored or queued.
        public var isDuplicate: Bool
    }

    /// Stores `inbound` and queues its turn. If queuing fails the message is marked `failed` and
    /// its stream ended (`queue_unavailable`) before the error is thrown, so nothing waits for a
    /// job that does not exist; the sender may send it again.
    ///
    /// `beforeQueuing` records what the channel keeps beside a new message (the generic webhook's
    /// callback) once it is stored and before its turn can start; if it throws, the message is
    /// marked `failed`, its stream ended, and the error rethrown, and no turn is queued.
    ///
    /// `handOff` queues what a new message needs in place of its turn (a media download that
    /// queues the turn when it is done, a canned answer); a failure is treated like a turn that
    /// could not be queued.
    public func accept(
        _ inbound: InboundMessage, logger: Logger, beforeQueuing: (@Sendable (Message) async throws -> Void)? = nil,
        handOff: (@Sendable (Message) async throws -> Void)? = nil
    ) async throws -> Accepted {
        if let earlier = try await earlierDelivery(of: inbound) { return Accepted(message: earlier, isDuplicate: true) }
        // An ignored message (an auto-reply) costs no quota: it is never answered.
        if inbound.ignoredReason == nil { try await checkQuota(ownerID: inbound.ownerID) }
        let message: Message
        do {
            message = try await store(inbound)
        } catch let error as DatabaseError where error.code == .duplicateKey {
            // The same delivery arrived twice at once and the other one stored it first.
            guard let earlier = try await earlierDelivery(of: inbound) else { throw error }
            return Accepted(message: earlier, isDuplicate: true)
        }
        if let beforeQueuing {
            do {
                try await beforeQueuing(message)
            } catch {
                logger.error("could not record a message's channel details", metadata: ["message_id": "\(message.id)", "error": "\(error)"])
                _ = try? await stores.messages.updateStatus(id: message.id, to: .failed, error: "the message could not be recorded", from: [.queued])
                _ = try? await TurnStreamWriter(redis: redis, messageID: message.id, settings: stream)
                    .end(.failed(code: "internal_error", message: "the message could not be recorded"))
                throw error
            }
        }
        if let reason = inbound.ignoredReason {
            _ = try await stores.messages.updateStatus(id: message.id, to: .cancelled, error: "ignored: \(reason)", from: [.cancelled])
            return Accepted(message: message, isDuplicate: false)
        }
        do {
            if let handOff {
                // Held first, so the recovery sweep leaves the message to its hand-off.
                try await TurnHold(redis: redis).hold(messageID: message.id)
                try await handOff(message)
            } else {
                try await Turns.enqueue(messageID: message.id, on: jobs)
            }
        } catch {
            logger.error("could not queue a turn", metadata: ["message_id": "\(message.id)", "error": "\(error)"])
            _ = try? await stores.messages.updateStatus(id: message.id, to: .failed, error: "the turn could not be queued", from: [.queued])
            _ = try? await TurnStreamWriter(redis: redis, messageID: message.id, settings: stream).end(.queueUnavailable)
            throw SwitchboardError.unavailable("the message could not be queued (it was stored as failed); send it again")
        }
        return Accepted(message: message, isDuplicate: false)
    }

    /// Answers a stored message with `text` instead of a turn (a message the channel cannot read):
    /// the reply is stored under the turn's reply key (once, however often this runs), its delivery
    /// queued, and the message marked `completed`.
    @discardableResult
    public func answerWithoutTurn(_ message: Message, text: String) async throws -> Message {
        let key = Turns.replyKey(for: message.id)
        var reply = try await stores.messages.message(ownerID: message.ownerID, idempotencyKey: key)
        if reply == nil {
            do {
                reply = try await stores.messages.insertMessage(NewMessage(
                    chatID: message.chatID, ownerID: message.ownerID, role: .assistant, content: text, status: .completed,
                    channel: message.channel, idempotencyKey: key, replyToID: message.id))
            } catch let error as DatabaseError where error.code == .duplicateKey {
                reply = try await stores.messages.message(ownerID: message.ownerID, idempotencyKey: key)
            }
        }
        guard let reply else { throw SwitchboardError.unavailable("the answer to message \(message.id) could not be stored") }
        try await Deliveries.enqueue(replyID: reply.id, on: jobs)
        _ = try await stores.messages.completeTurn(id: message.id, topic: nil, language: nil)
        return reply
    }

    /// Throws 429 `quota_exceeded`, naming when the window starts again, when the owner has used
    /// up a quota. A message is counted once, however often its turn runs.
    public func checkQuota(ownerID: Int64, now: Date = Date()) async throws {
        let limits = quotas.overridden(by: try await stores.quotas.quota(userID: ownerID))
        let windows = QuotaWindows(now: now)
        if let perDay = limits.messagesPerDay, perDay > 0,
           try await stores.quotas.messageCount(userID: ownerID, since: windows.dayStart) >= perDay {
            throw SwitchboardError(
                .quotaExceeded, status: 429,
                "the quota of \(perDay) messages a day is used up; it resets at \(Self.timestamp(windows.nextDay))")
        }
        if let perMonth = limits.tokensPerMonth, perMonth > 0 {
            let totals = try await stores.usage.usageTotals(userID: ownerID, since: windows.monthStart)
            if totals.promptTokens + totals.completionTokens >= perMonth {
                throw SwitchboardError(
                    .quotaExceeded, status: 429,
                    "the quota of \(perMonth) provider tokens a month is used up; it resets at \(Self.timestamp(windows.nextMonth))")
            }
        }
    }

    static func timestamp(_ date: Date) -> String { date.formatted(.iso8601) }

    /// The message stored for an earlier delivery of `inbound` (same owner, channel and id).
    private func earlierDelivery(of inbound: InboundMessage) async throws -> Message? {
        guard let externalID = inbound.externalID else { return nil }
        return try await stores.messages.message(ownerID: inbound.ownerID, channel: inbound.channel, externalID: externalID)
    }

    private func store(_ inbound: InboundMessage) async throws -> Message {
        var row = NewMessage(
            chatID: 0, ownerID: inbound.ownerID, role: .user, content: inbound.content,
            status: inbound.ignoredReason == nil ? .queued : .cancelled, channel: inbound.channel)
        row.externalID = inbound.externalID
        switch inbound.chat {
        case .existing(let chatID):
            // Ids are positive: the column would refuse anything else as out of range.
            guard chatID > 0 else { throw SwitchboardError.notFound("no chat \(chatID)") }
            row.chatID = chatID
            // The (chat_id, user_id) foreign key refuses a chat that does not exist or is not the
            // owner's, so no read of the chat comes first.
            do {
                return try await stores.messages.insertMessage(row)
            } catch let error as DatabaseError where error.code == .foreignKeyViolation {
                throw SwitchboardError.notFound("no chat \(chatID)")
            }
        case .new(let title):
            return try await stores.messages.startChat(
                title: title ?? Self.title(from: inbound.content), externalThreadKey: nil, firstMessage: row
            ).message
        case .newWithHistory(let title, let history):
            let now = Date()
            let earlier = history.map { earlier in
                NewMessage(
                    chatID: 0, ownerID: inbound.ownerID, role: earlier.role, content: earlier.content, status: .completed,
                    channel: inbound.channel, deliveredAt: earlier.role == .user ? nil : now)
            }
            return try await stores.messages.startChat(title: title ?? Self.title(from: inbound.content), history: earlier, then: row).message
        case .thread(let key, let title):
            if let chat = try await stores.chats.chat(ownerID: inbound.ownerID, channel: inbound.channel, externalThreadKey: key) {
                row.chatID = chat.id
                do {
                    return try await stores.messages.insertMessage(row)
                } catch let error as DatabaseError where error.code == .foreignKeyViolation {
                    // The chat was deleted since it was found: the conversation starts over.
                }
            }
            return try await stores.messages.startChat(
                title: title ?? Self.title(from: inbound.content), externalThreadKey: key, firstMessage: row
            ).message
        }
    }

    /// A chat's title from its first message: the first line, at most 60 characters.
    public static func title(from content: String) -> String {
        let line = content.split(whereSeparator: \.isNewline).first.map(String.init) ?? content
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        return trimmed.count > 60 ? String(trimmed.prefix(59)) + "…" : (trimmed.isEmpty ? "New chat" : trimmed)
    }
}
