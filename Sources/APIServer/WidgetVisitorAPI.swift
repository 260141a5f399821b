/// `/api/v1/widget/{publicId}` (public, no API key): what a website visitor's widget calls. A
/// session is opened with a server-issued secret (`sessionToken`, only its SHA-256 is stored)
/// that every later call presents as `Authorization: Bearer …`; requests from an `Origin` the
/// widget does not allow are refused (403) and allowed ones get CORS headers, preflight included
/// (`WidgetOriginMiddleware`). Limits: sessions per IP, messages per session per minute, messages
/// per session, messages per widget per minute (429 with `Retry-After`).
import Channels
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Realtime
import Storage
import SwitchboardCore

struct WidgetVisitorAPI: Sendable {
    let dependencies: APIDependencies
    let relay: TurnEventRelay
    let limiter: RateLimiter
    let trustedProxies: Int
    var api: PublicAPI { PublicAPI(dependencies: dependencies) }
    var stores: Stores { dependencies.stores }

    func live() throws -> LiveSupport {
        guard let live = dependencies.liveSupport else { throw SwitchboardError.unavailable("live support is not configured on this node") }
        return live
    }

    /// GET /widget/{publicId}/config
    func config(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let live = try live()
        let widget = try await publicWidget(context)
        return try APIJSON.response(WidgetConfigJSON(
            name: widget.name, greeting: WidgetOptions(widget).greeting, realtime: .init(url: live.realtimeURL)))
    }

    /// POST /widget/{publicId}/sessions
    func createSession(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let live = try live()
        let widget = try await publicWidget(context)
        if live.sessionsPerIPPerMinute > 0 {
            let ip = RateLimitMiddleware.clientIP(
                forwardedFor: request.headers[values: HTTPField.Name("X-Forwarded-For")!], peer: context.remoteAddress?.ipAddress,
                trustedProxies: trustedProxies)
            try await limit("widget-sessions-ip:\(ip)", perMinute: live.sessionsPerIPPerMinute, burst: live.sessionsPerIPPerMinute)
        }
        let minter = try live.requireTokens()
        let sessionID = WidgetsAPI.newID("ses_")
        let secret = WidgetsAPI.newID("wst_") + WidgetsAPI.newID("")
        let chat = try await stores.chats.createChat(
            ownerID: widget.ownerID, title: "\(widget.name): visitor", channel: .widget, externalThreadKey: sessionID)
        let session = try await stores.liveSupport.createSession(
            widgetID: widget.id, sessionID: sessionID, tokenHash: Self.hash(secret), chatID: chat.id)
        let token = minter.mint(
            subject: "visitor:\(sessionID)", capabilities: LiveSupportChannels.visitorCapabilities(publicID: widget.publicKey, sessionID: sessionID))
        live.publisher.send(
            .notification(kind: "session_started", sessionID: sessionID, preview: ""), to: LiveSupportChannels.operators(widgetID: widget.id))
        return try APIJSON.response(
            VisitorSessionJSON(sessionId: session.sessionID, sessionToken: secret, realtime: Self.realtime(token, widget: widget, sessionID: sessionID)),
            status: .created)
    }

    /// POST /widget/{publicId}/sessions/{sessionId}/messages
    func postMessage(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let live = try live()
        let (widget, session) = try await visitorSession(request, context)
        var request = request
        let body = try await APIJSON.decode(PostMessageBody.self, from: &request, maxBytes: dependencies.settings.maxBodyBytes)
        let content = try api.validContent(body.content)
        guard !session.isClosed else { throw WidgetsAPI.closed(session) }
        try await checkMessageLimits(widget: widget, session: session, live: live)
        guard let chatID = session.chatID else { throw SwitchboardError.notFound("no session \(session.sessionID)") }

        // A message sent with an Idempotency-Key is stored under it: a retry whose first attempt
        // was stored (its answer lost) gets that message back, published and queued once.
        let externalID = try IdempotencyStore.key(of: request).map {
            InboundMessage.externalID(scope: "widget-session:\(session.sessionID)", idempotencyKey: $0)
        }
        // (In `ai` mode the intake looks the key up itself.)
        if session.mode != .ai, let externalID,
           let earlier = try await stores.messages.message(ownerID: widget.ownerID, channel: .widget, externalID: externalID) {
            return try retried(earlier, content: content, widget: widget, session: session)
        }

        let message: Message
        if session.mode == .ai {
            // The log entry (with the mode version the question was asked under) is written
            // before the turn can start, so its reply's delivery can always be judged.
            let accepted = try await dependencies.intake.accept(
                InboundMessage(ownerID: widget.ownerID, channel: .widget, content: content, chat: .existing(chatID), externalID: externalID),
                logger: context.logger
            ) { stored in
                try await stores.liveSupport.recordMessage(
                    sessionRowID: session.id, messageID: stored.id, role: "visitor", preview: content, actorUserID: nil)
            }
            if accepted.isDuplicate { return try retried(accepted.message, content: content, widget: widget, session: session) }
            message = accepted.message
        } else {
            // Stored first; published as soon as it is (the operators wait for it), logged meanwhile.
            do {
                message = try await stores.messages.insertMessage(NewMessage(
                    chatID: chatID, ownerID: widget.ownerID, role: .user, content: content, status: .completed, channel: .widget,
                    externalID: externalID))
            } catch let error as DatabaseError where error.code == .duplicateKey && externalID != nil {
                // The same retry arrived twice at once and the other one stored it first.
                guard let earlier = try await stores.messages.message(ownerID: widget.ownerID, channel: .widget, externalID: externalID!)
                else { throw error }
                return try retried(earlier, content: content, widget: widget, session: session)
            }
        }
        live.publishMessage(widget: widget, session: session, message: message, role: "visitor", notify: "new_message")
        if session.mode != .ai {
            try await stores.liveSupport.recordMessage(
                sessionRowID: session.id, messageID: message.id, role: "visitor", preview: content, actorUserID: nil)
        }
        return try accepted(message, widget: widget, session: session)
    }

    /// The 202 for a visitor message: in `ai` mode, with its turn's stream.
    private func accepted(_ message: Message, widget: Widget, session: LiveSession) throws -> Response {
        let events = session.mode == .ai
            ? "/api/v1/widget/\(widget.publicKey)/sessions/\(session.sessionID)/messages/\(message.id)/events" : nil
        return try APIJSON.response(
            VisitorMessageAcceptedJSON(messageId: message.id, mode: session.mode.rawValue, events: events), status: .accepted)
    }

    /// The answer to a retry of a stored message: the same message (nothing stored, published or
    /// queued again), or 422 when the key came with other content.
    private func retried(_ earlier: Message, content: String, widget: Widget, session: LiveSession) throws -> Response {
        guard earlier.content == content, earlier.chatID == session.chatID else {
            throw SwitchboardError(.idempotencyMismatch, status: 422, "Idempotency-Key was used with a different request")
        }
        return try accepted(earlier, widget: widget, session: session)
    }

    /// GET /widget/{publicId}/sessions/{sessionId}/messages: the transcript, oldest first.
    func transcript(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let (widget, session) = try await visitorSession(request, context)
        let page = try await LiveTranscript.page(
            stores: stores, session: session, ownerID: widget.ownerID, limit: try api.pageSize(request),
            after: try api.cursor(request, name: "after"), forOperators: false)
        return try APIJSON.response(page)
    }

    /// GET /widget/{publicId}/sessions/{sessionId}/messages/{messageId}/events: the turn's SSE stream.
    func events(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let (widget, session) = try await visitorSession(request, context)
        let id = try api.pathID(context, "messageId", what: "message")
        guard let message = try await stores.messages.message(id: id, ownerID: widget.ownerID), message.chatID == session.chatID,
              message.role == .user
        else { throw SwitchboardError.notFound("no message \(id)") }
        let lastEventID = try TurnEventRelay.lastEventID(request)
        return relay.streamResponse(
            messageID: message.id, status: message.status, after: lastEventID, headers: TurnEventRelay.streamHeaders, context: context)
    }

    /// POST /widget/{publicId}/sessions/{sessionId}/handoff: the visitor asks for a human (mode `waiting`).
    func handoff(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let live = try live()
        let (widget, session) = try await visitorSession(request, context)
        guard !session.isClosed else { throw WidgetsAPI.closed(session) }
        var current = session
        if session.mode == .ai {
            guard let changed = try await stores.liveSupport.setMode(
                sessionRowID: session.id, to: .waiting, operatorID: nil, actorUserID: nil, from: [.ai])
            else { throw WidgetsAPI.closed(session) }
            current = changed
            try await LiveSupport.stopTurns(of: changed, ownerID: widget.ownerID, dependencies: dependencies, logger: context.logger)
            live.publishMode(widget: widget, session: changed, byOperator: false)
            live.publisher.send(
                .notification(kind: "handoff", sessionID: session.sessionID, preview: session.lastMessage ?? ""),
                to: LiveSupportChannels.operators(widgetID: widget.id))
        }
        return try APIJSON.response(VisitorModeJSON(sessionId: current.sessionID, mode: current.mode.rawValue))
    }

    /// POST /widget/{publicId}/sessions/{sessionId}/realtime-token
    func realtimeToken(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let minter = try live().requireTokens()
        let (widget, session) = try await visitorSession(request, context)
        let token = minter.mint(
            subject: "visitor:\(session.sessionID)",
            capabilities: LiveSupportChannels.visitorCapabilities(publicID: widget.publicKey, sessionID: session.sessionID))
        return try APIJSON.response(Self.realtime(token, widget: widget, sessionID: session.sessionID))
    }

    // MARK: - Checks

    private func publicWidget(_ context: APIRequestContext) async throws -> Widget {
        let publicID = context.parameters.get("publicId") ?? ""
        guard let widget = try await stores.widgets.widget(publicKey: publicID) else { throw SwitchboardError.notFound("no widget \(publicID)") }
        return widget
    }

    /// The session named in the path, of the widget named in the path, whose secret the request presents.
    private func visitorSession(_ request: Request, _ context: APIRequestContext) async throws -> (Widget, LiveSession) {
        let widget = try await publicWidget(context)
        let sessionID = context.parameters.get("sessionId") ?? ""
        guard let presented = APIKeyAuthenticator.presentedKey(request.headers), !presented.isEmpty else {
            throw APIKeyAuthenticator.unauthorized("the session token is required (Authorization: Bearer …)")
        }
        guard let session = try await stores.liveSupport.session(widgetID: widget.id, sessionID: sessionID) else {
            throw SwitchboardError.notFound("no session \(sessionID)")
        }
        guard let stored = session.tokenHash, ConstantTime.equals(Array(stored), Array(Self.hash(presented))) else {
            throw APIKeyAuthenticator.unauthorized("the session token is not valid")
        }
        return (widget, session)
    }

    private func checkMessageLimits(widget: Widget, session: LiveSession, live: LiveSupport) async throws {
        let options = WidgetOptions(widget)
        let perSession = options.messagesPerSession ?? live.defaultMessagesPerSession
        if perSession > 0, let chatID = session.chatID, try await stores.liveSupport.visitorMessageCount(chatID: chatID) >= perSession {
            throw RateLimitExceeded(retryAfterSeconds: 3600, message: "this session has reached its limit of \(perSession) messages")
        }
        let perMinute = options.messagesPerMinute ?? live.defaultMessagesPerMinute
        if perMinute > 0 { try await limit("widget-session:\(session.id)", perMinute: perMinute, burst: max(1, min(perMinute, 5))) }
        if live.widgetMessagesPerMinute > 0 {
            try await limit("widget:\(widget.id)", perMinute: live.widgetMessagesPerMinute, burst: live.widgetMessagesPerMinute)
        }
    }

    private func limit(_ subject: String, perMinute: Int, burst: Int) async throws {
        let decision = try await limiter.check(subject: subject, rule: RateLimitRule(limit: perMinute, period: .seconds(60), burst: max(1, burst)))
        guard decision.allowed else {
            let seconds = max(1, RateLimitMiddleware.seconds(decision.retryAfterMilliseconds))
            throw RateLimitExceeded(retryAfterSeconds: seconds, message: "too many requests; retry in \(seconds) s")
        }
    }

    static func hash(_ secret: String) -> Data { Data(SHA256.hash(data: Data(secret.utf8))) }

    static func realtime(_ token: RealtimeToken, widget: Widget, sessionID: String) -> VisitorRealtimeJSON {
        VisitorRealtimeJSON(
            token: token.token, expiresAt: APIJSON.timestamp(token.expiresAt),
            channels: .init(
                session: LiveSupportChannels.session(publicID: widget.publicKey, sessionID: sessionID),
                typing: LiveSupportChannels.typing(publicID: widget.publicKey, sessionID: sessionID)))
    }
}

/// A 429 answered with `Retry-After` (the edge turns it into the JSON error).
struct RateLimitExceeded: Error {
    var retryAfterSeconds: Int
    var message: String

    var response: Response {
        var response = JSONErrorMiddleware<APIRequestContext>.response(
            status: 429, code: SwitchboardError.Code.rateLimited.rawValue, message: message)
        response.headers[RateLimitMiddleware.retryAfterHeader] = "\(retryAfterSeconds)"
        return response
    }
}

/// Answers preflight requests of the visitor routes, refuses (403) a request whose `Origin` the
/// widget does not allow, and adds CORS headers to every answer for an allowed one (errors too).
struct WidgetOriginMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    let widgets: any WidgetStore
    static let prefix = "/api/v1/widget/"

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        guard path.hasPrefix(Self.prefix) else { return try await next(request, context) }
        let origin = request.headers[.origin]
        var cors: HTTPFields = [:]
        if let origin {
            let publicID = path.dropFirst(Self.prefix.count).prefix { $0 != "/" }
            // An unknown widget is left to the route (404).
            if let widget = try await widgets.widget(publicKey: String(publicID)) {
                guard Self.allows(widget, origin: origin) else {
                    return JSONErrorMiddleware<Context>.response(
                        status: 403, code: SwitchboardError.Code.originNotAllowed.rawValue, message: "origin \(origin) is not allowed for this widget")
                }
                cors[.accessControlAllowOrigin] = origin
                cors[.vary] = "Origin"
                cors[.accessControlExposeHeaders] = "Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, X-Request-ID"
            }
        }
        if request.method == .options {
            var response = Response(status: .noContent, headers: cors)
            if !cors.isEmpty {
                response.headers[.accessControlAllowMethods] = "GET, POST, OPTIONS"
                response.headers[.accessControlAllowHeaders] = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID"
                response.headers[.accessControlMaxAge] = "600"
            }
            return response
        }
        var response: Response
        do {
            response = try await next(request, context)
        } catch let limited as RateLimitExceeded {
            response = limited.response
        } catch {
            response = JSONErrorMiddleware<Context>.response(for: error, request: request, context: context)
        }
        for field in cors { response.headers[field.name] = field.value }
        return response
    }

    static func allows(_ widget: Widget, origin: String) -> Bool {
        let origin = origin.lowercased()
        return widget.allowedOrigins.contains { $0 == "*" || $0.lowercased() == origin }
    }
}

struct WidgetConfigJSON: Encodable {
    struct Realtime: Encodable { var url: String }
    var name: String
    var greeting: String?
    var realtime: Realtime
}

struct VisitorRealtimeJSON: Encodable {
    struct Channels: Encodable {
        var session: String
        var typing: String
    }
    var token: String
    var expiresAt: String
    var channels: Channels
}

struct VisitorSessionJSON: Encodable {
    var sessionId: String
    var sessionToken: String
    var realtime: VisitorRealtimeJSON
}

struct VisitorMessageAcceptedJSON: Encodable {
    var messageId: Int64
    var mode: String
    var events: String?
}

struct VisitorModeJSON: Encodable {
    var sessionId: String
    var mode: String
}
