/// Channels owns the channel seam: how messages from the outside arrive (`InboundAdapter` →
/// `InboundMessage` → `ChannelIntake`, which stores them and queues their turn) and how replies go
/// back (`ChannelDelivery`, run by the `deliver_reply` job). Every channel this build has is
/// registered here, in `ChannelRegistry.standard`; docs/channels.md says how to add one.
import Foundation
import SwitchboardCore

/// The channels this build has: for each, its deliverer (inbound adapters are called by the
/// api's routes for that channel).
public struct ChannelRegistry: Sendable {
    public var deliveries: ChannelDeliveries

    public init(deliveries: ChannelDeliveries) {
        self.deliveries = deliveries
    }

    /// Web chat and the REST API (`WebChatInbound`; replies read from the turn stream and the
    /// stored reply, `StoredReplyDelivery`). The widget's replies are delivered the same way.
    public static let standard = ChannelRegistry(deliveries: ChannelDeliveries([StoredReplyDelivery()]))
}
