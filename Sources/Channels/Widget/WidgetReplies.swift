/// The widget's deliverer: an assistant reply reaches the visitor on the session's gateway channel
/// only if the session is still answered by the AI under the same mode as when the visitor asked
/// (a takeover, even one undone since, withholds it: it stays stored, undelivered). While a turn
/// generates, the visitor's typing channel shows the assistant typing.
import Foundation
import Logging
import Realtime
import Storage
import SwitchboardCore

/// Delivers widget replies through the realtime gateway, gated by the session's mode.
public struct WidgetReplies: ChannelDelivery {
    public var channels: Set<Channel> { [.widget] }
    public let stores: Stores
    public let publisher: LivePublisher
    /// How often `typing` is sent while a turn runs (receivers drop an indicator 6 s after its last frame).
    public let typingInterval: Duration
    /// The longest a turn shows the assistant typing.
    public let typingLimit: Duration
    let logger: Logger

    public init(
        stores: Stores, publisher: LivePublisher, typingInterval: Duration = .seconds(3), typingLimit: Duration = .seconds(180),
        logger: Logger = Logger(label: "switchboard.widget")
    ) {
        self.stores = stores
        self.publisher = publisher
        self.typingInterval = typingInterval
        self.typingLimit = typingLimit
        self.logger = logger
    }

    public func deliver(reply: Message, origin: Message) async throws {
        guard reply.status == .completed else {
            throw DeliveryError(.notDeliverable, "reply \(reply.id) is \(reply.status.rawValue), not completed")
        }
        guard let session = try await stores.liveSupport.session(chatID: origin.chatID),
              let widget = try await stores.widgets.widget(id: session.widgetID, ownerID: origin.ownerID)
        else { throw DeliveryError(.notDeliverable, "reply \(reply.id) belongs to no widget session") }
        let askedUnder = try await stores.liveSupport.modeVersion(messageID: origin.id)
        guard session.mode == .ai, !session.isClosed, askedUnder == session.modeVersion else {
            logger.info("widget reply withheld: the session left AI mode after the question", metadata: [
                "reply_id": "\(reply.id)", "mode": "\(session.mode.rawValue)",
            ])
            throw DeliveryWithheld(reason: "the session is in \(session.mode.rawValue) mode since the question")
        }
        try await stores.liveSupport.recordMessage(
            sessionRowID: session.id, messageID: reply.id, role: "assistant", preview: reply.content, actorUserID: nil)
        // Recorded as delivered before it is published, so a client reading the transcript on the
        // event finds it there (the runner's own mark after this one changes nothing).
        _ = try await stores.messages.markDelivered(id: reply.id)
        await publisher.publishNow(
            .message(id: reply.id, role: "assistant", content: reply.content),
            to: LiveSupportChannels.session(publicID: widget.publicKey, sessionID: session.sessionID))
    }

    public func turnStarted(origin: Message) async {
        do {
            guard let session = try await stores.liveSupport.session(chatID: origin.chatID),
                  let widget = try await stores.widgets.widget(id: session.widgetID, ownerID: origin.ownerID)
            else { return }
            let channel = LiveSupportChannels.typing(publicID: widget.publicKey, sessionID: session.sessionID)
            let clock = ContinuousClock()
            let end = clock.now.advanced(by: typingLimit)
            while clock.now < end {
                guard let current = try await stores.messages.message(id: origin.id), !current.status.isFinal else { return }
                publisher.send(.typing(from: "assistant"), to: channel)
                try await Task.sleep(for: typingInterval)
            }
        } catch {
            logger.debug("assistant typing stopped", metadata: ["message_id": "\(origin.id)", "error": "\(error)"])
        }
    }
}
