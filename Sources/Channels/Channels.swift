/// Channels owns the channel seam: how messages from the outside arrive (`InboundAdapter` →
/// `InboundMessage` → `ChannelIntake`, which stores them and queues their turn) and how replies go
/// back (`ChannelDelivery`, run by the `deliver_reply` job). Every channel this build has is
/// registered here, in `ChannelRegistry.configured`; docs/channels.md says how to add one.
import Foundation
import Realtime
import Storage
import SwitchboardCore

/// The channels this build has: for each, its deliverer (inbound adapters are called by the
/// api's routes for that channel).
public struct ChannelRegistry: Sendable {
    public var deliveries: ChannelDeliveries

    public init(deliveries: ChannelDeliveries) {
        self.deliveries = deliveries
    }

    /// The channels that need no configuration: web chat and the REST API (`WebChatInbound`;
    /// replies read from the turn stream and the stored reply, `StoredReplyDelivery`). The
    /// widget's replies are delivered the same way.
    public static let standard = ChannelRegistry(deliveries: ChannelDeliveries([StoredReplyDelivery()]))

    /// Every channel of this build, as the worker role runs them: the standard ones and WhatsApp
    /// (`WhatsAppReplies`, sending through the Graph API at `whatsAppGraphURL`), the generic
    /// webhook's callbacks (`GenericWebhookReplies`) and email (`EmailReplies`, over SMTP).
    /// With a realtime publisher, widget replies go through the gateway behind the session's mode
    /// gate (`WidgetReplies`).
    public static func configured(
        stores: Stores, secrets: SecretBox, whatsAppGraphURL: String, allowPrivateCallbacks: Bool = false, realtime: LivePublisher? = nil,
        email: EmailChannelSettings = .init()
    ) -> ChannelRegistry {
        var deliveries = standard.deliveries
        deliveries.register(WhatsAppReplies(stores: stores, secrets: secrets, graphURL: whatsAppGraphURL))
        deliveries.register(GenericWebhookReplies(stores: stores, secrets: secrets, allowPrivateCallbacks: allowPrivateCallbacks))
        if let realtime { deliveries.register(WidgetReplies(stores: stores, publisher: realtime)) }
        deliveries.register(EmailReplies(stores: stores, secrets: secrets, messageIDDomain: email.messageIDDomain, caFile: email.caFile))
        return ChannelRegistry(deliveries: deliveries)
    }
}
