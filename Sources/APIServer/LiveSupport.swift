/// What live support's routes share: its settings (`LiveSupport`, given to the api by the
/// launcher), a widget's settings as the API shows them, the JSON of sessions and transcript
/// messages, and the steps both sides take (publishing events, stopping a session's AI turn).
import Foundation
import Hummingbird
import Logging
import Realtime
import RedisClient
import Storage
import SwitchboardCore
import Turns

/// Live support's dependencies and limits in the api.
public struct LiveSupport: Sendable {
    /// Where events go (the gateway's engine or a Centrifugo HTTP API).
    public var publisher: LivePublisher
    /// Mints gateway tokens; nil when no token secret is shared with the gateway (token routes answer 503).
    public var tokens: RealtimeTokenMinter?
    /// The WebSocket URL clients connect to (`realtime.url` in the widget's config).
    public var realtimeURL: String
    /// Sessions one IP may open per minute (0: unlimited).
    public var sessionsPerIPPerMinute: Int
    /// Limits of a widget that sets none.
    public var defaultMessagesPerMinute: Int
    public var defaultMessagesPerSession: Int
    /// Messages per minute all of one widget's visitors may send together (0: unlimited).
    public var widgetMessagesPerMinute: Int

    public init(
        publisher: LivePublisher, tokens: RealtimeTokenMinter?, realtimeURL: String, sessionsPerIPPerMinute: Int = 10,
        defaultMessagesPerMinute: Int = 20, defaultMessagesPerSession: Int = 200, widgetMessagesPerMinute: Int = 600
    ) {
        self.publisher = publisher
        self.tokens = tokens
        self.realtimeURL = realtimeURL
        self.sessionsPerIPPerMinute = sessionsPerIPPerMinute
        self.defaultMessagesPerMinute = defaultMessagesPerMinute
        self.defaultMessagesPerSession = defaultMessagesPerSession
        self.widgetMessagesPerMinute = widgetMessagesPerMinute
    }
}

/// A widget's settings kept in its `settings` column.
struct WidgetOptions {
    var greeting: String?
    var messagesPerMinute: Int?
    var messagesPerSession: Int?

    init(_ widget: Widget) {
        greeting = widget.settings["greeting"]
        messagesPerMinute = widget.settings["messagesPerMinute"].flatMap(Int.init)
        messagesPerSession = widget.settings["messagesPerSession"].flatMap(Int.init)
    }

    init(greeting: String?, messagesPerMinute: Int?, messagesPerSession: Int?) {
        self.greeting = greeting
        self.messagesPerMinute = messagesPerMinute
        self.messagesPerSession = messagesPerSession
    }

    var settings: [String: String] {
        var settings: [String: String] = [:]
        if let greeting { settings["greeting"] = greeting }
        if let messagesPerMinute { settings["messagesPerMinute"] = String(messagesPerMinute) }
        if let messagesPerSession { settings["messagesPerSession"] = String(messagesPerSession) }
        return settings
    }
}

struct WidgetLimitsJSON: Codable {
    var messagesPerMinute: Int?
    var messagesPerSession: Int?
}

struct WidgetJSON: Encodable {
    var id: Int64
    var publicId: String
    var name: String
    var allowedOrigins: [String]
    var greeting: String?
    var limits: WidgetLimitsJSON
    /// `owner` or `operator`: how the caller relates to the widget.
    var access: String
    var operators: [Int64]?
    var createdAt: String
    var updatedAt: String

    init(_ widget: Widget, callerID: Int64, operators: [Int64]? = nil) {
        let options = WidgetOptions(widget)
        id = widget.id
        publicId = widget.publicKey
        name = widget.name
        allowedOrigins = widget.allowedOrigins
        greeting = options.greeting
        limits = WidgetLimitsJSON(messagesPerMinute: options.messagesPerMinute, messagesPerSession: options.messagesPerSession)
        access = widget.ownerID == callerID ? "owner" : "operator"
        self.operators = operators
        createdAt = APIJSON.timestamp(widget.createdAt)
        updatedAt = APIJSON.timestamp(widget.updatedAt)
    }
}

/// A session as operators see it.
struct LiveSessionJSON: Encodable {
    var sessionId: String
    var mode: String
    var operatorId: Int64?
    var operatorName: String?
    var lastMessage: LastMessageJSON?
    var lastActivityAt: String?
    var closed: Bool
    var createdAt: String

    struct LastMessageJSON: Encodable {
        var role: String
        var content: String
    }

    init(_ session: LiveSession) {
        sessionId = session.sessionID
        mode = session.mode.rawValue
        operatorId = session.operatorID
        operatorName = session.operatorName
        if let content = session.lastMessage, let role = session.lastMessageRole { lastMessage = LastMessageJSON(role: role, content: content) }
        lastActivityAt = session.lastActivityAt.map(APIJSON.timestamp)
        closed = session.isClosed
        createdAt = APIJSON.timestamp(session.createdAt)
    }
}

/// A transcript entry: `visitor`, `assistant` or `operator`.
struct TranscriptMessageJSON: Encodable {
    var id: Int64
    var role: String
    var content: String
    var operatorName: String?
    var status: String
    /// Operators' view only: false for an AI reply withheld by a takeover.
    var delivered: Bool?
    var createdAt: String
}

enum LiveTranscript {
    static func role(_ message: Message) -> String? {
        switch message.role {
        case .user: "visitor"
        case .assistant: "assistant"
        case .operator: "operator"
        default: nil
        }
    }

    /// A page of a session's transcript, oldest first, after `after`; the visitor's view leaves
    /// out AI replies that never reached it (withheld, or still being delivered).
    static func page(
        stores: Stores, session: LiveSession, ownerID: Int64, limit: Int, after: Int64?, forOperators: Bool
    ) async throws -> PageJSON<TranscriptMessageJSON> {
        guard let chatID = session.chatID else { return PageJSON(data: [], nextCursor: nil) }
        let messages = try await stores.messages.messages(chatID: chatID, ownerID: ownerID, limit: limit + 1, beforeID: nil, afterID: after ?? 0)
        let page = Array(messages.prefix(limit))
        let names = try await stores.liveSupport.operatorNames(messageIDs: page.filter { $0.role == .operator }.map(\.id))
        var data: [TranscriptMessageJSON] = []
        for message in page {
            guard let role = role(message) else { continue }
            let delivered = message.role != .assistant || message.deliveredAt != nil
            if !forOperators, !delivered { continue }
            data.append(TranscriptMessageJSON(
                id: message.id, role: role, content: message.content, operatorName: names[message.id], status: message.status.rawValue,
                delivered: forOperators && message.role == .assistant ? delivered : nil, createdAt: APIJSON.timestamp(message.createdAt)))
        }
        return PageJSON(data: data, nextCursor: messages.count > limit ? page.last.map { String($0.id) } : nil)
    }
}

extension LiveSupport {
    /// Publishes a session's message and the operators' notification.
    func publishMessage(widget: Widget, session: LiveSession, message: Message, role: String, operatorName: String? = nil, notify: String?) {
        publisher.send(
            .message(id: message.id, role: role, content: message.content, operatorName: operatorName),
            to: LiveSupportChannels.session(publicID: widget.publicKey, sessionID: session.sessionID))
        if let notify {
            publisher.send(
                .notification(kind: notify, sessionID: session.sessionID, preview: message.content),
                to: LiveSupportChannels.operators(widgetID: widget.id))
        }
    }

    /// Publishes a session's new mode to the visitor and, for changes an operator made
    /// (`byOperator`), a `mode_changed` notification to every operator of the widget.
    func publishMode(widget: Widget, session: LiveSession, byOperator: Bool) {
        let operatorName = session.mode == .human ? session.operatorName : nil
        publisher.send(
            .mode(session.mode.rawValue, operatorName: operatorName),
            to: LiveSupportChannels.session(publicID: widget.publicKey, sessionID: session.sessionID))
        if byOperator { notifyModeChanged(widget: widget, session: session) }
    }

    func notifyModeChanged(widget: Widget, session: LiveSession) {
        publisher.send(
            .modeChanged(
                sessionID: session.sessionID, mode: session.mode.rawValue,
                operatorName: session.mode == .human ? session.operatorName : nil, closed: session.isClosed),
            to: LiveSupportChannels.operators(widgetID: widget.id))
    }

    func requireTokens() throws -> RealtimeTokenMinter {
        guard let tokens else {
            throw SwitchboardError.unavailable("realtime tokens are not available: no gateway token secret is configured")
        }
        return tokens
    }

    /// Stops the session's AI turns still queued or running: the worker ends a running one's
    /// stream as stopped; a queued one is ended here.
    static func stopTurns(of session: LiveSession, ownerID: Int64, dependencies: APIDependencies, logger: Logger) async throws {
        guard let chatID = session.chatID else { return }
        let recent = try await dependencies.stores.messages.messages(chatID: chatID, ownerID: ownerID, limit: 20, beforeID: nil, afterID: nil)
        let cancellation = TurnCancellation(redis: dependencies.redis, settings: dependencies.settings.turnStream)
        for message in recent where message.role == .user && !message.status.isFinal {
            try await cancellation.request(messageID: message.id)
            if message.status == .queued,
               try await dependencies.stores.messages.updateStatus(id: message.id, to: .cancelled, error: "stopped by a takeover", from: [.queued]) {
                try await TurnStreamWriter(redis: dependencies.redis, messageID: message.id, settings: dependencies.settings.turnStream)
                    .end(.cancelled)
            }
            logger.info("AI turn stopped by a mode change", metadata: ["message_id": "\(message.id)"])
        }
    }
}
