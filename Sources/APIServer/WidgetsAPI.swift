/// `/api/v1/widgets` (API key): a user's widgets and their operators, the sessions of the widgets
/// they own or operate (list, transcript, takeover, operator replies, handback, close), and
/// `/api/v1/realtime/token`, the caller's gateway token. A widget neither owned nor operated by
/// the caller is answered as not found; changing or deleting a widget and its operators is the
/// owner's alone.
import Foundation
import Hummingbird
import Realtime
import Storage
import SwitchboardCore

struct WidgetsAPI: Sendable {
    let dependencies: APIDependencies
    var api: PublicAPI { PublicAPI(dependencies: dependencies) }
    var stores: Stores { dependencies.stores }

    static let maxNameCharacters = 200
    static let maxGreetingCharacters = 1000
    static let maxOrigins = 50

    func live() throws -> LiveSupport {
        guard let live = dependencies.liveSupport else { throw SwitchboardError.unavailable("live support is not configured on this node") }
        return live
    }

    // MARK: - Realtime token

    /// POST /realtime/token: a connection token for the widgets the caller owns or operates.
    func realtimeToken(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let minter = try live().requireTokens()
        let widgets = try await stores.liveSupport.visibleWidgets(userID: caller.user.id)
        let capabilities = LiveSupportChannels.operatorCapabilities(widgets: widgets.map { ($0.id, $0.publicKey) })
        let token = minter.mint(subject: "user:\(caller.user.id)", capabilities: capabilities)
        return try APIJSON.response(RealtimeTokenJSON(
            token: token.token, expiresAt: APIJSON.timestamp(token.expiresAt), channels: capabilities.flatMap(\.channels),
            url: live().realtimeURL))
    }

    // MARK: - Widgets

    func create(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        var request = request
        let body = try await APIJSON.decode(WidgetBody.self, from: &request, maxBytes: dependencies.settings.maxBodyBytes)
        let name = try ChannelsAPI.required(body.name, "name", limit: Self.maxNameCharacters)
        let origins = try Self.origins(body.allowedOrigins ?? [])
        let options = WidgetOptions(
            greeting: try Self.greeting(body.greeting), messagesPerMinute: try Self.limit(body.limits?.messagesPerMinute, "limits.messagesPerMinute"),
            messagesPerSession: try Self.limit(body.limits?.messagesPerSession, "limits.messagesPerSession"))
        let widget = try await stores.widgets.createWidget(
            ownerID: caller.user.id, name: name, publicKey: Self.newID("wgt_"), allowedOrigins: origins, settings: options.settings)
        return try APIJSON.response(
            WidgetJSON(widget, callerID: caller.user.id, operators: []), status: .created, headers: [.location: "/api/v1/widgets/\(widget.id)"])
    }

    func list(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let widgets = try await stores.liveSupport.visibleWidgets(userID: caller.user.id)
        return try APIJSON.response(PageJSON(data: widgets.map { WidgetJSON($0, callerID: caller.user.id) }, nextCursor: nil))
    }

    func get(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let widget = try await visible(context)
        let operators = widget.ownerID == caller.user.id ? try await stores.liveSupport.operatorIDs(widgetID: widget.id) : nil
        return try APIJSON.response(WidgetJSON(widget, callerID: caller.user.id, operators: operators))
    }

    func update(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let widget = try await owned(context)
        var request = request
        let body = try await APIJSON.decode(WidgetBody.self, from: &request, maxBytes: dependencies.settings.maxBodyBytes)
        let name = try body.name.map { try ChannelsAPI.required($0, "name", limit: Self.maxNameCharacters) }
        let origins = try body.allowedOrigins.map(Self.origins)
        var options = WidgetOptions(widget)
        if body.greeting != nil { options.greeting = try Self.greeting(body.greeting) }
        if let limits = body.limits {
            if let value = limits.messagesPerMinute { options.messagesPerMinute = try Self.limit(value, "limits.messagesPerMinute") }
            if let value = limits.messagesPerSession { options.messagesPerSession = try Self.limit(value, "limits.messagesPerSession") }
        }
        guard let updated = try await stores.widgets.updateWidget(
            id: widget.id, ownerID: caller.user.id, name: name, allowedOrigins: origins, settings: options.settings)
        else { throw SwitchboardError.notFound("no widget \(widget.id)") }
        return try APIJSON.response(WidgetJSON(updated, callerID: caller.user.id, operators: try await stores.liveSupport.operatorIDs(widgetID: widget.id)))
    }

    func delete(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let widget = try await owned(context)
        guard try await stores.widgets.deleteWidget(id: widget.id, ownerID: caller.user.id) else { throw SwitchboardError.notFound("no widget \(widget.id)") }
        return Response(status: .noContent)
    }

    func addOperator(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let widget = try await owned(context)
        var request = request
        let body = try await APIJSON.decode(OperatorBody.self, from: &request, maxBytes: dependencies.settings.maxBodyBytes)
        let email = try ChannelsAPI.required(body.email, "email", limit: 320)
        guard let user = try await stores.users.user(email: email) else { throw SwitchboardError.notFound("no user with that email") }
        guard user.id != widget.ownerID else { throw SwitchboardError.invalidField("email", "is the widget's owner") }
        try await stores.liveSupport.addOperator(widgetID: widget.id, userID: user.id)
        return try APIJSON.response(OperatorJSON(widgetId: widget.id, userId: user.id, email: user.email, name: user.name), status: .created)
    }

    func removeOperator(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let widget = try await owned(context)
        let userID = try api.pathID(context, "userId", what: "operator")
        guard try await stores.liveSupport.removeOperator(widgetID: widget.id, userID: userID) else {
            throw SwitchboardError.notFound("user \(userID) is no operator of widget \(widget.id)")
        }
        return Response(status: .noContent)
    }

    // MARK: - Sessions (owner and operators)

    func sessions(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let widget = try await visible(context)
        var mode: WidgetSession.Mode?
        if let raw = request.uri.queryParameters["mode"] {
            guard let value = WidgetSession.Mode(rawValue: String(raw)) else {
                throw SwitchboardError.invalidField("mode", "must be one of: ai, waiting, human")
            }
            mode = value
        }
        let limit = try api.pageSize(request)
        let sessions = try await stores.liveSupport.sessions(widgetID: widget.id, mode: mode, limit: limit)
        return try APIJSON.response(PageJSON(data: sessions.map(LiveSessionJSON.init), nextCursor: nil))
    }

    func transcript(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let (widget, session) = try await visibleSession(context)
        let page = try await LiveTranscript.page(
            stores: stores, session: session, ownerID: widget.ownerID, limit: try api.pageSize(request),
            after: try api.cursor(request, name: "after"), forOperators: true)
        return try APIJSON.response(page)
    }

    /// POST …/takeover: mode `human` under the caller; the session's running AI turn is stopped.
    func takeover(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let live = try live()
        let (widget, session) = try await visibleSession(context)
        guard let changed = try await stores.liveSupport.setMode(
            sessionRowID: session.id, to: .human, operatorID: caller.user.id, actorUserID: caller.user.id, from: nil)
        else { throw Self.closed(session) }
        try await LiveSupport.stopTurns(of: changed, ownerID: widget.ownerID, dependencies: dependencies, logger: context.logger)
        live.publishMode(widget: widget, session: changed, byOperator: true)
        return try APIJSON.response(LiveSessionJSON(changed))
    }

    /// POST …/messages: the operator's reply; only while the session is in `human` mode.
    func reply(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let live = try live()
        let (widget, session) = try await visibleSession(context)
        var request = request
        let body = try await APIJSON.decode(PostMessageBody.self, from: &request, maxBytes: dependencies.settings.maxBodyBytes)
        let content = try api.validContent(body.content)
        guard !session.isClosed else { throw Self.closed(session) }
        guard session.mode == .human, let chatID = session.chatID else {
            throw SwitchboardError(.conflict, status: 409, "the session is in \(session.mode.rawValue) mode; take it over before replying")
        }
        let message = try await stores.messages.insertMessage(NewMessage(
            chatID: chatID, ownerID: widget.ownerID, role: .operator, content: content, status: .completed, channel: .widget,
            deliveredAt: .databaseNow()))
        let name = caller.user.name.isEmpty ? caller.user.email : caller.user.name
        // Published as soon as it is stored (the visitor waits for it), logged meanwhile.
        live.publishMessage(widget: widget, session: session, message: message, role: "operator", operatorName: name, notify: nil)
        try await stores.liveSupport.recordMessage(
            sessionRowID: session.id, messageID: message.id, role: "operator", preview: content, actorUserID: caller.user.id)
        return try APIJSON.response(
            TranscriptMessageJSON(
                id: message.id, role: "operator", content: content, operatorName: name, status: message.status.rawValue, delivered: nil,
                createdAt: APIJSON.timestamp(message.createdAt)),
            status: .created)
    }

    /// POST …/handback: mode `ai` again.
    func handback(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let live = try live()
        let (widget, session) = try await visibleSession(context)
        guard let changed = try await stores.liveSupport.setMode(
            sessionRowID: session.id, to: .ai, operatorID: nil, actorUserID: caller.user.id, from: nil)
        else { throw Self.closed(session) }
        live.publishMode(widget: widget, session: changed, byOperator: true)
        return try APIJSON.response(LiveSessionJSON(changed))
    }

    /// POST …/close: the visitor can send nothing more; its AI turn, if any, is stopped.
    func close(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let live = try live()
        let (widget, session) = try await visibleSession(context)
        guard let closed = try await stores.liveSupport.close(sessionRowID: session.id, actorUserID: caller.user.id) else {
            throw SwitchboardError.notFound("no session \(session.sessionID)")
        }
        try await LiveSupport.stopTurns(of: closed, ownerID: widget.ownerID, dependencies: dependencies, logger: context.logger)
        live.publisher.send(
            RealtimeEvent(type: "closed", data: [:]), to: LiveSupportChannels.session(publicID: widget.publicKey, sessionID: session.sessionID))
        live.notifyModeChanged(widget: widget, session: closed)
        return try APIJSON.response(LiveSessionJSON(closed))
    }

    // MARK: - Lookups and validation

    private func visible(_ context: APIRequestContext) async throws -> Widget {
        let caller = try context.requireCaller()
        let id = try api.pathID(context, "widgetId", what: "widget")
        guard let widget = try await stores.liveSupport.visibleWidget(id: id, userID: caller.user.id) else {
            throw SwitchboardError.notFound("no widget \(id)")
        }
        return widget
    }

    /// The caller's own widget; an operator is answered 403, anyone else 404.
    private func owned(_ context: APIRequestContext) async throws -> Widget {
        let caller = try context.requireCaller()
        let widget = try await visible(context)
        guard widget.ownerID == caller.user.id else {
            throw SwitchboardError(.forbidden, status: 403, "only the widget's owner may change it or its operators")
        }
        return widget
    }

    private func visibleSession(_ context: APIRequestContext) async throws -> (Widget, LiveSession) {
        let widget = try await visible(context)
        let sessionID = context.parameters.get("sessionId") ?? ""
        guard let session = try await stores.liveSupport.session(widgetID: widget.id, sessionID: sessionID) else {
            throw SwitchboardError.notFound("no session \(sessionID)")
        }
        return (widget, session)
    }

    static func closed(_ session: LiveSession) -> SwitchboardError {
        SwitchboardError(.sessionClosed, status: 409, "session \(session.sessionID) is closed")
    }

    static func origins(_ values: [String]) throws -> [String] {
        guard values.count <= maxOrigins else { throw SwitchboardError.invalidField("allowedOrigins", "may list at most \(maxOrigins) origins") }
        return try values.map { value in
            let origin = value.trimmingCharacters(in: .whitespaces)
            if origin == "*" { return origin }
            guard let url = URL(string: origin), let scheme = url.scheme, ["http", "https"].contains(scheme.lowercased()),
                  url.host != nil, url.path.isEmpty || url.path == "/", url.query == nil
            else { throw SwitchboardError.invalidField("allowedOrigins", "'\(value)' is not an origin like https://example.com") }
            return origin.hasSuffix("/") ? String(origin.dropLast()).lowercased() : origin.lowercased()
        }
    }

    static func greeting(_ value: String?) throws -> String? {
        guard let value else { return nil }
        if value.count > maxGreetingCharacters { throw SwitchboardError.invalidField("greeting", "is longer than \(maxGreetingCharacters) characters") }
        return value
    }

    static func limit(_ value: Int?, _ field: String) throws -> Int? {
        guard let value else { return nil }
        guard (1...100_000).contains(value) else { throw SwitchboardError.invalidField(field, "must be from 1 to 100000") }
        return value
    }

    /// 128 random bits behind a prefix: an id nobody can guess.
    static func newID(_ prefix: String) -> String {
        var generator = SystemRandomNumberGenerator()
        return prefix + (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}

struct WidgetBody: Decodable {
    var name: String?
    var allowedOrigins: [String]?
    var greeting: String?
    var limits: WidgetLimitsJSON?
}

struct OperatorBody: Decodable {
    var email: String?
}

struct OperatorJSON: Encodable {
    var widgetId: Int64
    var userId: Int64
    var email: String
    var name: String
}

struct RealtimeTokenJSON: Encodable {
    var token: String
    var expiresAt: String
    var channels: [String]
    /// The gateway's WebSocket URL to connect to with the token.
    var url: String
}
