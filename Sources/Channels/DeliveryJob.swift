/// The `deliver_reply` job: hands a stored reply to the deliverer of the channel its question
/// came from, once per reply, on the `delivery` queue.
import Foundation
import Logging
import Queue
import Storage
import SwitchboardCore
import Tracing

/// The job that hands a stored reply to the channel its question came from: queued by the turn
/// on the `delivery` queue once the reply is stored, under an idempotency key per reply, so a
/// turn that runs twice still queues one delivery. Channels whose clients read the turn stream
/// need no job: the turn delivers their reply as it stores it (`ChannelDelivery.isTurnStream`).
public struct DeliveryJob: JobPayload, Equatable {
    public static let name = "deliver_reply"
    public var replyId: Int64

    public init(replyId: Int64) { self.replyId = replyId }
}

/// Why a delivery cannot succeed; retrying would not help, so the job goes to `failed` at once.
public typealias DeliveryError = CodedError<DeliveryFailure>

/// The kind of `DeliveryError`s.
public enum DeliveryFailure {}

extension ErrorCode where Kind == DeliveryFailure {
    /// No deliverer is registered for the message's channel.
    public static var noDeliverer: Self { "no_deliverer" }
    /// The message is not a reply that can be delivered.
    public static var notDeliverable: Self { "not_deliverable" }
}

extension CodedError: PermanentJobError where Kind == DeliveryFailure {}

/// A deliverer's answer that the reply must not reach its channel (a widget session taken over
/// by a human since the question): the reply stays stored and undelivered, the job succeeds.
public struct DeliveryWithheld: Error, Sendable {
    public var reason: String
    public init(reason: String) { self.reason = reason }
}

/// Runs a `DeliveryJob`: looks the reply up, hands it to its channel's deliverer and records
/// `delivered_at`. Idempotent: a reply already delivered is not handed over again.
public struct DeliveryRunner: Sendable {
    public let messages: any MessageStore
    public let deliveries: ChannelDeliveries

    public init(messages: any MessageStore, deliveries: ChannelDeliveries = .standard) {
        self.messages = messages
        self.deliveries = deliveries
    }

    public enum Outcome: Sendable, Equatable {
        case delivered
        /// Recorded before: nothing was sent.
        case alreadyDelivered
        /// The reply or its question no longer exists (the chat was deleted): nothing to send.
        case dropped
        /// The deliverer withheld it (`DeliveryWithheld`): it stays undelivered.
        case withheld
    }

    @discardableResult
    public func run(replyID: Int64, logger: Logger) async throws -> Outcome {
        var logger = logger
        logger[metadataKey: "reply_id"] = "\(replyID)"
        guard let (reply, origin) = try await messages.messageAndOrigin(id: replyID) else {
            logger.info("delivery skipped: the reply no longer exists")
            return .dropped
        }
        if reply.deliveredAt != nil { return .alreadyDelivered }
        guard reply.role == .assistant || reply.role == .operator, reply.replyToID != nil else {
            throw DeliveryError(.notDeliverable, "message \(replyID) is not a reply")
        }
        guard let origin else {
            logger.info("delivery skipped: the question no longer exists")
            return .dropped
        }
        guard let deliverer = deliveries.deliverer(for: origin.channel) else {
            throw DeliveryError(.noDeliverer, "no deliverer for channel '\(origin.channel.rawValue)' is configured (reply \(replyID))")
        }
        do {
            try await withSpan("deliver \(origin.channel.rawValue)", ofKind: .client) { span in
                if span.isRecording {
                    span.attributes["switchboard.reply.id"] = Int(replyID)
                    span.attributes["switchboard.channel"] = origin.channel.rawValue
                }
                try await deliverer.deliver(reply: reply, origin: origin)
            }
        } catch let withheld as DeliveryWithheld {
            logger.info("delivery withheld", metadata: ["reason": "\(withheld.reason)"])
            return .withheld
        }
        _ = try await messages.markDelivered(id: replyID)
        logger.debug("reply delivered", metadata: ["channel": "\(origin.channel.rawValue)"])
        return .delivered
    }
}

/// Queuing and running `deliver_reply` jobs.
public enum Deliveries {
    /// The queue delivery jobs run on.
    public static let queue: QueueName = .delivery

    /// The enqueue key of a reply's delivery: one job per reply, however often it is queued.
    public static func deliveryKey(for replyID: Int64) -> String { "reply:\(replyID)" }

    /// Queues the delivery of a stored reply (a duplicate within a week answers the first job's id).
    @discardableResult
    public static func enqueue(replyID: Int64, on producer: any JobProducer) async throws -> JobID {
        try await producer.enqueue(
            DeliveryJob(replyId: replyID), on: queue,
            options: EnqueueOptions(idempotencyKey: deliveryKey(for: replyID), idempotencyTTL: .seconds(7 * 86_400)))
    }

    /// Registers the `deliver_reply` job handler (for the worker role).
    public static func register(in registry: inout JobRegistry, messages: any MessageStore, deliveries: ChannelDeliveries = .standard) {
        let runner = DeliveryRunner(messages: messages, deliveries: deliveries)
        registry.register(DeliveryJob.self) { job, context in
            try await runner.run(replyID: job.replyId, logger: context.logger)
        }
    }
}
