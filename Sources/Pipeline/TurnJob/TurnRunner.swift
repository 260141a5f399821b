/// The `turn` job on workers: claims the message, runs it through a `TurnResponder` (the routing
/// pipeline) with its events going to the turn stream, stores the reply, hands it to its channel,
/// and ends the stream exactly once. Idempotent: a turn whose message is already final is not run
/// again; only its final event is written if a crash lost it.
import AIProviders
import Channels
import Foundation
import Logging
import Queue
import RedisClient
import Storage
import SwitchboardCore
import Tracing
import Turns

/// What the turn job needs.
public struct TurnJobDependencies: Sendable {
    public var redis: RedisClient
    public var messages: any MessageStore
    public var responder: any TurnResponder
    public var stream: TurnStreamSettings
    /// How often a running turn looks for a stop request.
    public var cancelPollInterval: Duration
    /// Where the delivery of a stored reply is queued.
    public var jobs: any JobProducer
    /// Who delivers replies, by channel (the `deliver_reply` handler's registry).
    public var deliveries: ChannelDeliveries
    /// Where a reply's sources are stored (nil: not stored, only sent with `complete`).
    public var documents: (any DocumentStore)?

    public init(
        redis: RedisClient, messages: any MessageStore, responder: any TurnResponder, stream: TurnStreamSettings = .init(),
        cancelPollInterval: Duration = .milliseconds(200), jobs: (any JobProducer)? = nil, deliveries: ChannelDeliveries = .standard
    ) {
        self.redis = redis
        self.messages = messages
        self.responder = responder
        self.stream = stream
        self.cancelPollInterval = cancelPollInterval
        self.jobs = jobs ?? JobQueue(client: redis)
        self.deliveries = deliveries
    }
}

/// Runs one turn (the `turn` job's handler).
public struct TurnRunner: Sendable {
    let dependencies: TurnJobDependencies

    public init(dependencies: TurnJobDependencies) { self.dependencies = dependencies }

    private var messages: any MessageStore { dependencies.messages }

    public func run(messageID: Int64, attempt: Int = 1, isLastAttempt: Bool = true, logger: Logger) async throws {
        var logger = logger
        logger[metadataKey: "message_id"] = "\(messageID)"
        let writer = TurnStreamWriter(redis: dependencies.redis, messageID: messageID, settings: dependencies.stream)
        guard var context = try await messages.messageContext(id: messageID, historyLimit: dependencies.responder.earlierMessages) else {
            logger.info("turn skipped: the message no longer exists")
            try await endDeleted(writer: writer)
            return
        }
        guard context.message.role == .user else {
            logger.warning("turn skipped: not a user message")
            return
        }

        if context.message.status.isFinal {
            try await ensureFinalEvent(context.message, writer: writer)
            return
        }
        // The `queued → running` commit runs while the turn reads, classifies and plans; its
        // events wait for it (the queue's gate), so its fsync is no longer a step of its own.
        var claim: TurnClaim?
        if context.message.status == .queued {
            let messages = self.messages
            claim = TurnClaim { try await messages.updateStatus(id: messageID, to: .running, error: nil, from: [.queued]) }
        }
        var gate: (@Sendable () async throws -> Void)?
        if let claim { gate = { try await claim.confirm() } }
        let events = TurnEventQueue(writer: writer, gate: gate)
        if claim != nil {
            try await events.append(.status(TurnStatus(stage: .started, attempt: attempt)))
            if let deliverer = dependencies.deliveries.deliverer(for: context.message.channel), !deliverer.isTurnStream {
                let origin = context.message
                Task { await deliverer.turnStarted(origin: origin) }
            }
        } else {
            logger.info("turn restarted after a redelivery", metadata: ["attempt": "\(attempt)"])
            try await events.append(.status(TurnStatus(stage: .restarted, attempt: attempt)))
        }
        context.message.status = .running
        let message = context.message

        let request = TurnRequest(context: context, attempt: attempt, isRestart: claim == nil, logger: logger)
        let cancellation = TurnCancellation(redis: dependencies.redis, settings: dependencies.stream)
        let outcome: Result<TurnOutcome?, any Error>
        do {
            outcome = .success(try await respondUnlessStopped(request, events: events, cancellation: cancellation))
        } catch {
            outcome = .failure(error)
        }
        if case .failure(let error) = outcome, error is CancellationError {
            throw error  // the worker stops this job (shutdown, timeout): it is retried elsewhere
        }
        // Nothing final is written before the claim settled and the queued events are in the
        // stream. A run that lost its claim wrote no event: what it queued is dropped.
        if let claim, !(try await claim.owned) {
            guard let current = try await messages.message(id: messageID) else {
                try await endDeleted(writer: writer)
                return
            }
            if current.status.isFinal {
                try await ensureFinalEvent(current, writer: writer)
                return
            }
            // Another run claimed it between our read and our update: retrying shows `restarted`.
            logger.info("turn claimed by another run meanwhile; retrying")
            throw TurnClaimLost()
        }
        try await events.flush()

        let reply: TurnOutcome?
        switch outcome {
        case .success(let value):
            reply = value
        case .failure(let failure as PipelineError):
            logger.info("turn failed", metadata: ["code": "\(failure.code)", "error": "\(failure.message)"])
            try await finishFailed(message, .failed(failure.code, failure.message), writer: writer)
            return
        case .failure(let error):
            if !isLastAttempt { throw error }
            logger.error("turn failed on its last attempt", metadata: ["error": "\(error)"])
            try await finishFailed(message, .failed(ErrorCode<TurnErrorKind>.internalError, "the answer could not be produced"), writer: writer)
            return
        }
        do {
            guard let reply else {
                try await finishCancelled(message, writer: writer)
                return
            }
            try await withSpan("deliver reply") { span in
                if span.isRecording {
                    span.attributes["switchboard.message.id"] = Int(message.id)
                    span.attributes["switchboard.channel"] = message.channel.rawValue
                }
                try await finishCompleted(message, reply: reply, isRestart: request.isRestart, writer: writer)
            }
        } catch {
            // The chat was deleted while the turn ran: there is nothing left to answer. Only a
            // look that finds no row says so; a look that fails (the database went away, which is
            // likely what failed the finish too) is not a deletion: the job is retried.
            let stillStored: Bool
            do {
                stillStored = try await messages.message(id: messageID) != nil
            } catch let lookup {
                logger.warning("turn not finished: the message could not be read back", metadata: ["error": "\(lookup)"])
                throw error
            }
            if !stillStored {
                logger.info("turn dropped: its message was deleted while it ran")
                try await endDeleted(writer: writer)
                return
            }
            throw error
        }
    }

    /// Runs the responder while watching the stop flag; nil when a stop request won.
    private func respondUnlessStopped(_ request: TurnRequest, events: TurnEventQueue, cancellation: TurnCancellation) async throws -> TurnOutcome? {
        let responder = dependencies.responder
        let poll = dependencies.cancelPollInterval
        let messageID = request.message.id
        return try await withThrowingTaskGroup(of: TurnOutcome?.self) { group in
            group.addTask {
                try await responder.respond(to: request, events: events)
            }
            group.addTask {
                // The first look comes one interval in: a stop sent while the turn was still queued
                // has cancelled it in the database already (the claim then fails), so a turn that
                // ends sooner (most do, with a fast provider) never asks Redis.
                while true {
                    try await Task.sleep(for: poll)
                    if (try? await cancellation.isRequested(messageID: messageID)) == true { return nil }
                }
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
    }

    private func finishCompleted(_ message: Message, reply: TurnOutcome, isRestart: Bool, writer: TurnStreamWriter) async throws {
        let key = Turns.replyKey(for: message.id)
        // Web chat, the API and the widget read the stream and the stored reply: storing it is
        // delivering it, so no delivery job (a job hand-off, a read and a write less per turn).
        let deliveredByStoring = dependencies.deliveries.deliverer(for: message.channel)?.isTurnStream == true
        let stored: Message
        // Only a run that restarted an earlier one can find a stored reply: a reply is stored
        // after its run claimed the turn, which makes every later run a restart.
        if isRestart, let existing = try await messages.message(ownerID: message.ownerID, idempotencyKey: key) {
            stored = existing
            if deliveredByStoring, existing.deliveredAt == nil { _ = try await messages.markDelivered(id: existing.id) }
        } else {
            stored = try await messages.insertMessage(NewMessage(
                chatID: message.chatID, ownerID: message.ownerID, role: .assistant, content: reply.reply, status: .completed,
                channel: message.channel, idempotencyKey: key, replyToID: message.id,
                deliveredAt: deliveredByStoring ? .databaseNow() : nil))
        }
        if !reply.sources.isEmpty, let documents = dependencies.documents {
            try await documents.saveSources(messageID: stored.id, sources: reply.sources)
        }
        // Before the status changes: a crash from here on redelivers the turn, which finds the
        // stored reply and queues again under the same key, so the reply is delivered exactly once.
        if !deliveredByStoring { try await Deliveries.enqueue(replyID: stored.id, on: dependencies.jobs) }
        let topic = reply.classification.topic, language = reply.classification.language
        guard try await messages.completeTurn(id: message.id, topic: topic, language: language) else {
            try await ensureFinalEvent(ofStored: message.id, writer: writer)
            return
        }
        try await writer.end(.completed(TurnCompletion(
            messageId: message.id, replyId: stored.id, topic: topic, language: language, provider: reply.provider,
            model: reply.model, usage: TurnUsage(promptTokens: reply.usage.promptTokens, completionTokens: reply.usage.completionTokens),
            sources: reply.sources.isEmpty ? nil : reply.sources)))
    }

    private func finishCancelled(_ message: Message, writer: TurnStreamWriter) async throws {
        _ = try await messages.updateStatus(id: message.id, to: .cancelled, error: "stopped by the user", from: [.running, .queued])
        try await ensureFinalEvent(ofStored: message.id, writer: writer)
    }

    private func finishFailed(_ message: Message, _ ending: TurnEnding, writer: TurnStreamWriter) async throws {
        guard case .failed(_, let text) = ending else { preconditionFailure("a failure ends with an error event") }
        if try await messages.updateStatus(id: message.id, to: .failed, error: text, from: [.running, .queued]) {
            try await writer.end(ending)
        } else {
            try await ensureFinalEvent(ofStored: message.id, writer: writer)
        }
    }

    /// The final event for the message as stored now, or the deleted one's if it is gone.
    private func ensureFinalEvent(ofStored messageID: Int64, writer: TurnStreamWriter) async throws {
        if let current = try await messages.message(id: messageID) {
            try await ensureFinalEvent(current, writer: writer)
        } else {
            try await endDeleted(writer: writer)
        }
    }

    /// Ends the stream of a turn whose message (with its chat) was deleted: a client still
    /// reading it learns that no answer will come instead of waiting on heartbeats.
    private func endDeleted(writer: TurnStreamWriter) async throws {
        try await writer.end(.deleted)
    }

    /// Writes the final event of a finished turn unless the stream already ended.
    func ensureFinalEvent(_ message: Message, writer: TurnStreamWriter) async throws {
        try await writer.end(.of(finished: message, replyID: nil))
    }
}
