import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Observability
import Storage

/// The HTTP surface of the api role: `/healthz` and the public API under `/api/v1` (REST and SSE)
/// on the public port, where every route shares the JSON error shape and the request id header;
/// `/metrics` and `/healthz` on the internal listener (`buildInternal`, loopback by default).
public enum APIApplication {
    /// The router of the api role, and the routes it serves (for the OpenAPI check).
    public static func buildRouter(dependencies: APIDependencies) -> Router<APIRequestContext> {
        buildRouterAndRoutes(dependencies: dependencies).router
    }

    /// The public routes `buildRouter` registers.
    public static func routes(dependencies: APIDependencies) -> [RouteDescription] {
        buildRouterAndRoutes(dependencies: dependencies).routes
    }

    /// The api application. `onServerRunning` gets the listening channel (its port when `port` is 0).
    /// Its connections are Hummingbird's HTTP/1 ones, except that a connection whose first request
    /// is a turn stream GET is served from channel handlers (`TurnStreamConnections`).
    public static func build(
        host: String, port: Int, dependencies: APIDependencies, logger: Logger,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let responder = buildRouter(dependencies: dependencies).buildResponder()
        let serverName = "switchboard"
        let opener = TurnStreamOpener(responder: responder, logger: logger, serverName: serverName)
        return Application(
            responder: responder,
            server: TurnStreamConnections.server(opener: opener),
            configuration: .init(address: .hostname(host, port: port), serverName: serverName),
            services: [TurnStreamClosing(channels: opener.channels)],
            onServerRunning: onServerRunning,
            logger: logger
        )
    }

    /// The internal listener's router: `/metrics` (Prometheus text) and `/healthz` (the same report
    /// as the public one). Nothing else: the public API is not served here.
    public static func buildInternalRouter(healthChecks: [HealthCheck]) -> Router<BasicRequestContext> {
        MetricsSetup.bootstrap()
        let router = Router()
        PlainListenerEdge.configure(router)
        router.get("/healthz") { _, _ in await HealthEndpoint.response(healthChecks) }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: MetricsSetup.render()))
            )
        }
        return router
    }

    /// The api's internal listener (`http.internal_host`, `http.internal_port`).
    public static func buildInternal(
        host: String, port: Int, healthChecks: [HealthCheck], logger: Logger,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        Application(
            router: buildInternalRouter(healthChecks: healthChecks),
            server: .http1(configuration: .init(additionalChannelHandlers: PlainListenerEdge.channelHandlers())),
            configuration: .init(address: .hostname(host, port: port), serverName: "switchboard-internal"),
            onServerRunning: onServerRunning,
            logger: logger
        )
    }

    static func buildRouterAndRoutes(dependencies: APIDependencies) -> (router: Router<APIRequestContext>, routes: [RouteDescription]) {
        MetricsSetup.bootstrap()
        let recorder = RouteRecorder()
        let router = Router(context: APIRequestContext.self)
        // A server span per request (continuing an incoming `traceparent`), only when tracing is on.
        // Query values that may hold a credential or user text (search) are recorded as REDACTED.
        if TracingSetup.isInstalled {
            router.add(middleware: TracingMiddleware<APIRequestContext>(
                recordingHeaders: [HTTPField.Name](), redactingQueryParameters: ["token", "key", "api_key", "access_token", "secret", "q"]))
        }
        router.add(middleware: RequestIDMiddleware())
        router.add(middleware: JSONErrorMiddleware())
        router.add(middleware: MetricsMiddleware())
        router.add(middleware: OpenAIErrorMiddleware(onlyUnderV1: true))
        router.add(middleware: MethodNotAllowedMiddleware(routes: recorder))
        router.add(middleware: WidgetOriginMiddleware(widgets: dependencies.stores.widgets))

        let healthChecks = dependencies.healthChecks
        recorder.record(.get, "/healthz")
        router.get("/healthz") { _, _ in await HealthEndpoint.response(healthChecks) }

        let api = PublicAPI(dependencies: dependencies)
        // One hub per router: its few Redis connections read every stream this node serves.
        let hub = TurnStreamHub(redis: dependencies.redis, settings: dependencies.settings.streamHub, messages: dependencies.stores.messages)
        let relay = TurnEventRelay(api: api, hub: hub)
        let limits = dependencies.limits
        let limiter = RateLimiter(redis: dependencies.redis)

        // Webhooks carry no API key: each channel authenticates its own deliveries.
        let webhooks = router.group("/api/v1/webhooks")
        if let rule = limits.perIP {
            webhooks.add(middleware: RateLimitMiddleware(limiter: limiter, rule: rule, subject: .clientIP, trustedProxies: limits.trustedProxies))
        }
        let whatsapp = WhatsAppWebhookAPI(dependencies: dependencies)
        recorder.record(.get, "/api/v1/webhooks/whatsapp/:channelId")
        webhooks.get("/whatsapp/:channelId", use: whatsapp.verify)
        recorder.record(.post, "/api/v1/webhooks/whatsapp/:channelId")
        webhooks.post("/whatsapp/:channelId", use: whatsapp.receive)
        recorder.record(.post, "/api/v1/webhooks/email/:channelId")
        webhooks.post("/email/:channelId", use: EmailWebhookAPI(dependencies: dependencies).receive)

        // The widget's visitors carry a session token, not an API key.
        let visitor = WidgetVisitorAPI(dependencies: dependencies, relay: relay, limiter: limiter, trustedProxies: limits.trustedProxies)
        let widget = router.group("/api/v1/widget")
        for (method, path, handler) in [
            (HTTPRequest.Method.get, "/:publicId/config", visitor.config),
            (.post, "/:publicId/sessions", visitor.createSession),
            (.post, "/:publicId/sessions/:sessionId/messages", visitor.postMessage),
            (.get, "/:publicId/sessions/:sessionId/messages", visitor.transcript),
            (.get, "/:publicId/sessions/:sessionId/messages/:messageId/events", visitor.events),
            (.post, "/:publicId/sessions/:sessionId/handoff", visitor.handoff),
            (.post, "/:publicId/sessions/:sessionId/realtime-token", visitor.realtimeToken),
        ] as [(HTTPRequest.Method, String, @Sendable (Request, APIRequestContext) async throws -> Response)] {
            recorder.record(method, "/api/v1/widget" + path)
            widget.on(RouterPath(path), method: method, use: handler)
        }
        // Sign-in carries no credentials yet: it has its own per-IP and per-account limits.
        let signIn = SignInAPI(dependencies: dependencies, limiter: limiter)
        recorder.record(.post, "/api/v1/auth/login")
        router.post("/api/v1/auth/login", use: signIn.login)
        WebPages.register(on: router, recorder: recorder, dependencies: dependencies)

        let v1 = router.group("/api/v1")
        v1.addCallerChecks(dependencies: dependencies, limiter: limiter)
        v1.add(middleware: IdempotencyMiddleware(
            store: api.idempotency, maxBodyBytes: dependencies.settings.maxBodyBytes, excludedPaths: ["/api/v1/messages/stream", "/api/v1/webhooks/generic/secret", "/api/v1/files"]))

        func on(
            _ method: HTTPRequest.Method, _ path: String,
            _ handler: @escaping @Sendable (Request, APIRequestContext) async throws -> Response
        ) {
            recorder.record(method, "/api/v1" + path)
            v1.on(RouterPath(path), method: method, use: handler)
        }
        on(.get, "/me", api.me)
        on(.get, "/auth/session", signIn.current)
        on(.post, "/auth/logout", signIn.logout)
        on(.post, "/chats", api.createChat)
        on(.get, "/chats", api.listChats)
        on(.get, "/chats/:chatId", api.getChat)
        on(.delete, "/chats/:chatId", api.deleteChat)
        on(.get, "/chats/:chatId/messages", api.listMessages)
        on(.post, "/chats/:chatId/messages", api.postToChat)
        on(.post, "/messages", api.postMessage)
        on(.post, "/messages/stream", relay.submitAndStream)
        on(.get, "/messages/:messageId", api.getMessage)
        on(.post, "/messages/:messageId/stop", api.stop)
        on(.get, "/messages/:messageId/events", relay.events)
        on(.get, "/usage", UsageAPI(dependencies: dependencies).get)
        let topics = TopicsAPI(dependencies: dependencies)
        on(.get, "/topics", topics.list)
        on(.post, "/topics", topics.create)
        on(.get, "/topics/:topicId", topics.get)
        on(.patch, "/topics/:topicId", topics.update)
        on(.delete, "/topics/:topicId", topics.delete)
        on(.post, "/topics/:topicId/rules", topics.createRule)
        on(.patch, "/topics/:topicId/rules/:ruleId", topics.updateRule)
        on(.delete, "/topics/:topicId/rules/:ruleId", topics.deleteRule)
        let channels = ChannelsAPI(dependencies: dependencies)
        on(.get, "/channels", channels.list)
        on(.post, "/channels", channels.create)
        on(.get, "/channels/:channelId", channels.get)
        on(.patch, "/channels/:channelId", channels.update)
        on(.delete, "/channels/:channelId", channels.delete)
        let widgets = WidgetsAPI(dependencies: dependencies)
        on(.post, "/realtime/token", widgets.realtimeToken)
        on(.post, "/widgets", widgets.create)
        on(.get, "/widgets", widgets.list)
        on(.get, "/widgets/:widgetId", widgets.get)
        on(.patch, "/widgets/:widgetId", widgets.update)
        on(.delete, "/widgets/:widgetId", widgets.delete)
        on(.post, "/widgets/:widgetId/operators", widgets.addOperator)
        on(.delete, "/widgets/:widgetId/operators/:userId", widgets.removeOperator)
        on(.get, "/widgets/:widgetId/sessions", widgets.sessions)
        on(.get, "/widgets/:widgetId/sessions/:sessionId/messages", widgets.transcript)
        on(.post, "/widgets/:widgetId/sessions/:sessionId/messages", widgets.reply)
        on(.post, "/widgets/:widgetId/sessions/:sessionId/takeover", widgets.takeover)
        on(.post, "/widgets/:widgetId/sessions/:sessionId/handback", widgets.handback)
        on(.post, "/widgets/:widgetId/sessions/:sessionId/close", widgets.close)
        let files = FilesAPI(dependencies: dependencies)
        on(.post, "/files", files.upload)
        on(.get, "/files", files.list)
        on(.get, "/files/:fileId", files.get)
        on(.patch, "/files/:fileId", files.update)
        on(.delete, "/files/:fileId", files.delete)
        on(.get, "/search", files.search)
        let generic = GenericWebhookAPI(dependencies: dependencies, hub: hub)
        on(.post, "/webhooks/generic", generic.receive)
        on(.post, "/webhooks/generic/secret", generic.rotateSecret)

        OpenAICompatibleAPI.register(on: router, recorder: recorder, dependencies: dependencies, hub: hub, limiter: limiter)
        return (router, recorder.routes)
    }
}

extension RouterGroup where Context == APIRequestContext {
    /// What every API-key route passes through, in order: the per-IP limit (before
    /// authentication, which also slows key guessing), the API key, the per-user limit.
    func addCallerChecks(dependencies: APIDependencies, limiter: RateLimiter) {
        let limits = dependencies.limits
        if let rule = limits.perIP {
            add(middleware: RateLimitMiddleware(limiter: limiter, rule: rule, subject: .clientIP, trustedProxies: limits.trustedProxies))
        }
        add(middleware: APIKeyAuthenticator(
            apiKeys: dependencies.stores.apiKeys, cache: APIKeyCache(store: dependencies.stores.apiKeys, redis: dependencies.redis),
            sessions: WebSessions(redis: dependencies.redis, settings: dependencies.web), users: dependencies.stores.users))
        if let rule = limits.perUser {
            add(middleware: RateLimitMiddleware(limiter: limiter, rule: rule, subject: .user, trustedProxies: limits.trustedProxies))
        }
    }
}
