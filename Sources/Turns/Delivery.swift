import Foundation
import Logging
import Queue
import Storage
import SwitchboardCore

/// The job that hands a stored reply to the channel its question came from: queued by the turn
/// on the `delivery` queue once the reply is stored, under an idempotency key per reply, so a
/// turn that runs twice still queues one delivery. Channels whose clients read the turn stream
/// need no job: the turn delivers their reply as it stores it (`ChannelDelivery.isTurnStream`).
public struct DeliveryJob: JobPayload, Equatable {
    public static let name = "deliver_reply"
    public var replyId: Int64

    public init(replyId: Int64) { self.replyId = replyId }
}

/// Hands replies to one or more channels. Web chat, the API and the widget are served by
/// `StoredReplyDelivery`; WhatsApp and email plug in here with their own senders.
///
/// `deliver` may run more than once for a reply (a worker can die after sending and before the
/// delivery is recorded): senders to outside systems pass `reply.id` along as their own
/// idempotency key where the channel has one.
public protocol ChannelDelivery: Sendable {
    /// The channels this deliverer serves.
    var channels: Set<Channel> { get }
    /// Sends `reply` (an assistant message) as the answer to `origin` (the user's message).
    func deliver(reply: Message, origin: Message) async throws
    /// True when the turn stream and the stored reply are the delivery itself (nothing leaves the
    /// server): the turn then stores its reply as delivered and queues no job.
    var isTurnStream: Bool { get }
}

extension ChannelDelivery {
    public var isTurnStream: Bool { false }
}

/// Deliverers by channel. A later registration for a channel replaces the earlier one.
public struct ChannelDeliveries: Sendable {
    private var deliverers: [Channel: any ChannelDelivery] = [:]

    public init(_ deliverers: [any ChannelDelivery] = []) {
        for deliverer in deliverers { register(deliverer) }
    }

    public mutating func register(_ deliverer: any ChannelDelivery) {
        for channel in deliverer.channels { deliverers[channel] = deliverer }
    }

    public func deliverer(for channel: Channel) -> (any ChannelDelivery)? { deliverers[channel] }

    /// The channels something can deliver to.
    public var channels: Set<Channel> { Set(deliverers.keys) }

    /// What this build delivers: the channels whose clients read the stored reply and the turn stream.
    public static let standard = ChannelDeliveries([StoredReplyDelivery()])
}

/// Web chat, the API and the widget: their clients already have the answer from the turn stream
/// (`chunk` … `complete`) and read it back from the stored reply (GET /api/v1/messages/{id}), so
/// nothing leaves the server; delivering is recording that the reply is there to read.
public struct StoredReplyDelivery: ChannelDelivery {
    public var channels: Set<Channel> { [.web, .api, .widget] }
    public var isTurnStream: Bool { true }

    public init() {}

    public func deliver(reply: Message, origin: Message) async throws {
        guard reply.status == .completed else {
            throw DeliveryError(.notDeliverable, "reply \(reply.id) is \(reply.status.rawValue), not completed")
        }
    }
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
        try await deliverer.deliver(reply: reply, origin: origin)
        _ = try await messages.markDelivered(id: replyID)
        logger.debug("reply delivered", metadata: ["channel": "\(origin.channel.rawValue)"])
        return .delivered
    }
}

extension Turns {
    /// The queue delivery jobs run on.
    public static let deliveryQueue: QueueName = .delivery

    /// The enqueue key of a reply's delivery: one job per reply, however often it is queued.
    public static func deliveryKey(for replyID: Int64) -> String { "reply:\(replyID)" }

    /// Queues the delivery of a stored reply (a duplicate within a week answers the first job's id).
    @discardableResult
    public static func enqueueDelivery(replyID: Int64, on producer: any JobProducer) async throws -> JobID {
        try await producer.enqueue(
            DeliveryJob(replyId: replyID), on: deliveryQueue,
            options: EnqueueOptions(idempotencyKey: deliveryKey(for: replyID), idempotencyTTL: .seconds(7 * 86_400)))
    }

    /// Registers the `deliver_reply` job handler (for the worker role).
    public static func registerDelivery(in registry: inout JobRegistry, messages: any MessageStore, deliveries: ChannelDeliveries = .standard) {
        let runner = DeliveryRunner(messages: messages, deliveries: deliveries)
        registry.register(DeliveryJob.self) { job, context in
            try await runner.run(replyID: job.replyId, logger: context.logger)
        }
    }
}
