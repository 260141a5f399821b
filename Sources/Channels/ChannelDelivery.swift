/// The outbound half of the channel seam: `ChannelDelivery` (who sends a stored reply back to a
/// channel) and `ChannelDeliveries` (the deliverers by channel).
import Foundation
import Storage
import SwitchboardCore

/// Hands replies to one or more channels. Web chat, the API and the widget are served by
/// `StoredReplyDelivery`; a channel outside the server brings its own sender.
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
    /// Called (without waiting) when a worker starts answering `origin`: a channel that shows the
    /// sender that an answer is coming (WhatsApp's read mark and typing indicator) does it here.
    /// Failures are the deliverer's to log; they never fail the turn.
    func turnStarted(origin: Message) async
}

extension ChannelDelivery {
    public var isTurnStream: Bool { false }
    public func turnStarted(origin: Message) async {}
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

    /// What this build delivers (`ChannelRegistry.standard`'s deliverers).
    public static var standard: ChannelDeliveries { ChannelRegistry.standard.deliveries }
}
