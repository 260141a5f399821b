import APIServer
import Channels
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Realtime
import RedisClient
import Storage
import SwitchboardCore
import TestSupport
import Testing
import TurnTestSupport

/// Live support against real Redis and MariaDB: widgets and operators, the visitor's routes, the
/// operator's takeover, the delivery gate, the events published into the gateway's engine (read
/// back from the channels' history streams, as a recovering gateway client would get them),
/// cross-boundary refusals and limits.
@Suite("Live support")
struct LiveSupportTests {
    static let secret = "live-support-test-token-secret"

    struct Live {
        let env: TestEnvironment
        let support: LiveSupport

        init(env: TestEnvironment, publisher: (any RealtimePublisher)? = nil, sessionsPerIP: Int = 0, perMinute: Int = 1000) {
            self.env = env
            support = LiveSupport(
                publisher: LivePublisher(publisher: publisher ?? EngineRealtimePublisher(redis: env.redis), logger: TestEnvironment.logger),
                tokens: RealtimeTokenMinter(secret: LiveSupportTests.secret, ttl: 600), realtimeURL: "ws://127.0.0.1:1/connection/websocket",
                sessionsPerIPPerMinute: sessionsPerIP, defaultMessagesPerMinute: perMinute, defaultMessagesPerSession: 1000,
                widgetMessagesPerMinute: 0)
        }

        var dependencies: APIDependencies {
            var dependencies = env.dependencies()
            dependencies.liveSupport = support
            return dependencies
        }

        func application() -> some ApplicationProtocol {
            Application(router: APIApplication.buildRouter(dependencies: dependencies), logger: TestEnvironment.logger)
        }

        var deliveries: ChannelDeliveries {
            var deliveries = ChannelDeliveries.standard
            deliveries.register(WidgetReplies(stores: env.stores, publisher: support.publisher, typingInterval: .milliseconds(200)))
            return deliveries
        }

        /// The events kept in a channel's history, oldest first (`{type, ts, data}`).
        func events(_ channel: String) async throws -> [[String: Any]] {
            let key = env.redis.key(RealtimeEngineKeys().streamKey(channel))
            let reply = try await env.redis.send(RedisCommand("XRANGE", key, "-", "+"))
            return (reply.array ?? []).compactMap { entry -> [String: Any]? in
                guard let fields = entry.array?.last?.array, fields.count == 2, let bytes = fields[1].bytes,
                      let publication = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]
                else { return nil }
                return publication["data"] as? [String: Any]
            }
        }

        /// Waits until the channel's history holds an event matching `match`.
        func waitForEvent(_ channel: String, _ match: @escaping ([String: Any]) -> Bool) async throws -> [String: Any]? {
            let deadline = ContinuousClock.now + .seconds(15)
            while ContinuousClock.now < deadline {
                if let event = try await events(channel).first(where: match) { return event }
                try await Task.sleep(for: .milliseconds(25))
            }
            return nil
        }
    }

    static func data(_ event: [String: Any]?) -> [String: Any] { event?["data"] as? [String: Any] ?? [:] }

    static func createWidget(
        _ client: some TestClientProtocol, key: String, origins: [String] = ["https://shop.example"], limits: [String: Any]? = nil
    ) async throws -> (id: Int64, publicID: String) {
        var body: [String: Any] = ["name": "Shop", "allowedOrigins": origins, "greeting": "Hello!"]
        if let limits { body["limits"] = limits }
        let response = try await client.execute(uri: "/api/v1/widgets", method: .post, headers: .auth(key), body: jsonBody(body))
        #expect(response.status == .created)
        return ((response.json["id"] as? NSNumber)?.int64Value ?? 0, response.json["publicId"] as? String ?? "")
    }

    struct VisitorSession {
        var id: String
        var token: String
        var realtime: [String: Any]
    }

    static func openSession(_ client: some TestClientProtocol, publicID: String, origin: String? = nil) async throws -> VisitorSession {
        var headers: HTTPFields = [:]
        if let origin { headers[.origin] = origin }
        let response = try await client.execute(uri: "/api/v1/widget/\(publicID)/sessions", method: .post, headers: headers)
        #expect(response.status == .created, "\(response.text)")
        return VisitorSession(
            id: response.json["sessionId"] as? String ?? "", token: response.json["sessionToken"] as? String ?? "",
            realtime: response.json["realtime"] as? [String: Any] ?? [:])
    }

    static func visitorPost(
        _ client: some TestClientProtocol, publicID: String, session: VisitorSession, _ content: String, token: String? = nil,
        idempotencyKey: String? = nil
    ) async throws -> TestResponse {
        var headers = HTTPFields.auth(token ?? session.token)
        if let idempotencyKey { headers[HTTPField.Name("Idempotency-Key")!] = idempotencyKey }
        return try await client.execute(
            uri: "/api/v1/widget/\(publicID)/sessions/\(session.id)/messages", method: .post, headers: headers,
            body: jsonBody(["content": content]))
    }

    /// The claims of a JWT (not verified: the gateway tests check signatures).
    static func claims(_ token: String) -> [String: Any] {
        let parts = token.split(separator: ".")
        guard parts.count == 3 else { return [:] }
        var base64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64.append("=") }
        guard let data = Data(base64Encoded: base64) else { return [:] }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    }

    @Test func ownersAndOperatorsSeeOnlyTheirWidgets() async throws {
        try await TestEnvironment.with { env in
            let live = Live(env: env)
            let (owner, ownerKey) = try await env.makeUser()
            let (helper, helperKey) = try await env.makeUser()
            let (_, strangerKey) = try await env.makeUser()
            _ = owner
            try await live.application().test(.router) { client in
                let widget = try await Self.createWidget(client, key: ownerKey)
                #expect(widget.publicID.hasPrefix("wgt_") && widget.publicID.count > 20)

                let stranger = try await client.execute(uri: "/api/v1/widgets/\(widget.id)", method: .get, headers: .auth(strangerKey))
                #expect(stranger.status == .notFound)
                let strangerList = try await client.execute(uri: "/api/v1/widgets", method: .get, headers: .auth(strangerKey))
                #expect((strangerList.json["data"] as? [Any])?.isEmpty == true)
                let strangerSessions = try await client.execute(uri: "/api/v1/widgets/\(widget.id)/sessions", method: .get, headers: .auth(strangerKey))
                #expect(strangerSessions.status == .notFound)

                let added = try await client.execute(
                    uri: "/api/v1/widgets/\(widget.id)/operators", method: .post, headers: .auth(ownerKey), body: jsonBody(["email": helper.email]))
                #expect(added.status == .created)
                let seen = try await client.execute(uri: "/api/v1/widgets", method: .get, headers: .auth(helperKey))
                let entries = seen.json["data"] as? [[String: Any]] ?? []
                #expect(entries.count == 1 && entries.first?["access"] as? String == "operator")
                let patched = try await client.execute(
                    uri: "/api/v1/widgets/\(widget.id)", method: .patch, headers: .auth(helperKey), body: jsonBody(["name": "Mine now"]))
                #expect(patched.status == .forbidden)

                let renamed = try await client.execute(
                    uri: "/api/v1/widgets/\(widget.id)", method: .patch, headers: .auth(ownerKey),
                    body: jsonBody(["name": "Shop 2", "limits": ["messagesPerMinute": 5]]))
                #expect(renamed.status == .ok && renamed.json["name"] as? String == "Shop 2")
                #expect((renamed.json["limits"] as? [String: Any])?["messagesPerMinute"] as? Int == 5)
                #expect(renamed.json["greeting"] as? String == "Hello!")

                let bad = try await client.execute(
                    uri: "/api/v1/widgets", method: .post, headers: .auth(ownerKey), body: jsonBody(["name": "x", "allowedOrigins": ["not an origin"]]))
                #expect(bad.status == .badRequest && bad.errorCode == "invalid_field")

                let removed = try await client.execute(
                    uri: "/api/v1/widgets/\(widget.id)/operators/\(helper.id)", method: .delete, headers: .auth(ownerKey))
                #expect(removed.status == .noContent)
                let gone = try await client.execute(uri: "/api/v1/widgets/\(widget.id)", method: .get, headers: .auth(helperKey))
                #expect(gone.status == .notFound)

                let token = try await client.execute(uri: "/api/v1/realtime/token", method: .post, headers: .auth(ownerKey))
                #expect(token.status == .ok)
                let channels = token.json["channels"] as? [String] ?? []
                #expect(channels.contains("widget:operators.\(widget.id)"))
                #expect(token.json["url"] as? String == "ws://127.0.0.1:1/connection/websocket", "where the console connects")
                let claims = Self.claims(token.json["token"] as? String ?? "")
                #expect(claims["sub"] as? String == "user:\(owner.id)")
                #expect((claims["exp"] as? NSNumber).map { $0.int64Value > Int64(Date().timeIntervalSince1970) } == true)

                let deleted = try await client.execute(uri: "/api/v1/widgets/\(widget.id)", method: .delete, headers: .auth(ownerKey))
                #expect(deleted.status == .noContent)
            }
        }
    }

    /// session → AI answer on the session channel → handoff (operators notified) → takeover → a
    /// visitor message gets no AI turn → operator reply → handback → the AI answers again.
    @Test func takeoverFlow() async throws {
        try await TestEnvironment.with { env in
            let live = Live(env: env)
            let (_, ownerKey) = try await env.makeUser()
            let (operatorUser, operatorKey) = try await env.makeUser()
            try await env.stores.users.updateUser(id: operatorUser.id, name: "Olga", role: nil).map { _ in () }
            try await env.withWorker(deliveries: live.deliveries) {
                try await live.application().test(.router) { client in
                    let widget = try await Self.createWidget(client, key: ownerKey)
                    _ = try await client.execute(
                        uri: "/api/v1/widgets/\(widget.id)/operators", method: .post, headers: .auth(ownerKey),
                        body: jsonBody(["email": operatorUser.email]))
                    let config = try await client.execute(uri: "/api/v1/widget/\(widget.publicID)/config", method: .get)
                    #expect(config.json["greeting"] as? String == "Hello!")
                    #expect((config.json["realtime"] as? [String: Any])?["url"] as? String == "ws://127.0.0.1:1/connection/websocket")

                    let session = try await Self.openSession(client, publicID: widget.publicID)
                    let channels = session.realtime["channels"] as? [String: String] ?? [:]
                    let sessionChannel = "widget:session.\(widget.publicID).\(session.id)"
                    let operatorsChannel = "widget:operators.\(widget.id)"
                    #expect(channels["session"] == sessionChannel)
                    #expect(channels["typing"] == "widgettyping:\(widget.publicID).\(session.id)")
                    let visitorClaims = Self.claims(session.realtime["token"] as? String ?? "")
                    #expect(visitorClaims["exp"] != nil)
                    let started = try await live.waitForEvent(operatorsChannel) { Self.data($0)["kind"] as? String == "session_started" }
                    #expect(Self.data(started)["sessionId"] as? String == session.id)

                    // AI mode: a turn answers, and its reply arrives on the session channel.
                    let first = try await Self.visitorPost(client, publicID: widget.publicID, session: session, "hello")
                    #expect(first.status == .accepted)
                    #expect(first.json["mode"] as? String == "ai")
                    #expect((first.json["events"] as? String)?.hasSuffix("/messages/\(first.json["messageId"] as? Int ?? 0)/events") == true)
                    let answer = try await live.waitForEvent(sessionChannel) { Self.data($0)["role"] as? String == "assistant" }
                    #expect(Self.data(answer)["content"] as? String == EchoResponder.reply(to: "hello"))
                    #expect(answer?["type"] as? String == "message" && answer?["ts"] != nil)
                    // The turn's SSE stream, as for a web message (the turn has ended: it replays to `complete`).
                    let eventsPath = first.json["events"] as? String ?? ""
                    let stream = try await client.execute(uri: eventsPath, method: .get, headers: .auth(session.token))
                    #expect(stream.status == .ok && stream.text.contains("event: complete"))
                    let foreign = try await client.execute(uri: eventsPath, method: .get, headers: .auth("wst_not_the_token"))
                    #expect(foreign.status == .unauthorized)

                    // Handoff: waiting, operators notified.
                    let handoff = try await client.execute(
                        uri: "/api/v1/widget/\(widget.publicID)/sessions/\(session.id)/handoff", method: .post, headers: .auth(session.token))
                    #expect(handoff.json["mode"] as? String == "waiting")
                    _ = try #require(try await live.waitForEvent(operatorsChannel) { Self.data($0)["kind"] as? String == "handoff" })
                    let waiting = try await client.execute(
                        uri: "/api/v1/widgets/\(widget.id)/sessions?mode=waiting", method: .get, headers: .auth(operatorKey))
                    #expect((waiting.json["data"] as? [[String: Any]])?.first?["sessionId"] as? String == session.id)

                    // Replying before a takeover is refused.
                    let early = try await client.execute(
                        uri: "/api/v1/widgets/\(widget.id)/sessions/\(session.id)/messages", method: .post, headers: .auth(operatorKey),
                        body: jsonBody(["content": "hi"]))
                    #expect(early.status == .conflict && early.errorCode == "conflict")

                    let takeover = try await client.execute(
                        uri: "/api/v1/widgets/\(widget.id)/sessions/\(session.id)/takeover", method: .post, headers: .auth(operatorKey))
                    #expect(takeover.json["mode"] as? String == "human" && takeover.json["operatorName"] as? String == "Olga")
                    let modeEvent = try await live.waitForEvent(sessionChannel) { $0["type"] as? String == "mode" && Self.data($0)["mode"] as? String == "human" }
                    #expect(Self.data(modeEvent)["operatorName"] as? String == "Olga")
                    // Every operator's list learns of it at once, not at the next visitor message.
                    let taken = try await live.waitForEvent(operatorsChannel) {
                        Self.data($0)["kind"] as? String == "mode_changed" && Self.data($0)["mode"] as? String == "human"
                    }
                    #expect(Self.data(taken)["sessionId"] as? String == session.id && Self.data(taken)["operatorName"] as? String == "Olga")

                    // Human mode: no AI turn; operators are notified.
                    let question = try await Self.visitorPost(client, publicID: widget.publicID, session: session, "are you human?")
                    #expect(question.status == .accepted && question.json["mode"] as? String == "human" && question.json["events"] == nil)
                    let questionID = Int64(question.json["messageId"] as? Int ?? 0)
                    #expect(try await env.stores.messages.message(id: questionID)?.status == .completed)
                    let notified = try await live.waitForEvent(operatorsChannel) { Self.data($0)["kind"] as? String == "new_message" && Self.data($0)["preview"] as? String == "are you human?" }
                    #expect(notified != nil)

                    let reply = try await client.execute(
                        uri: "/api/v1/widgets/\(widget.id)/sessions/\(session.id)/messages", method: .post, headers: .auth(operatorKey),
                        body: jsonBody(["content": "Yes, I am Olga."]))
                    #expect(reply.status == .created)
                    let operatorMessage = try await live.waitForEvent(sessionChannel) { Self.data($0)["role"] as? String == "operator" }
                    #expect(Self.data(operatorMessage)["content"] as? String == "Yes, I am Olga.")
                    #expect(Self.data(operatorMessage)["operatorName"] as? String == "Olga")

                    // Handback: the AI answers again.
                    let handback = try await client.execute(
                        uri: "/api/v1/widgets/\(widget.id)/sessions/\(session.id)/handback", method: .post, headers: .auth(operatorKey))
                    #expect(handback.json["mode"] as? String == "ai")
                    #expect(try await live.waitForEvent(operatorsChannel) {
                        Self.data($0)["kind"] as? String == "mode_changed" && Self.data($0)["mode"] as? String == "ai"
                    } != nil)
                    let again = try await Self.visitorPost(client, publicID: widget.publicID, session: session, "thanks")
                    #expect(again.json["mode"] as? String == "ai")
                    let second = try await live.waitForEvent(sessionChannel) { Self.data($0)["content"] as? String == EchoResponder.reply(to: "thanks") }
                    #expect(second != nil)

                    // The visitor's transcript, oldest first; the operators' one names the operator.
                    let transcript = try await client.execute(
                        uri: "/api/v1/widget/\(widget.publicID)/sessions/\(session.id)/messages", method: .get, headers: .auth(session.token))
                    let roles = (transcript.json["data"] as? [[String: Any]] ?? []).map { $0["role"] as? String ?? "" }
                    #expect(roles == ["visitor", "assistant", "visitor", "operator", "visitor", "assistant"])
                    let operatorView = try await client.execute(
                        uri: "/api/v1/widgets/\(widget.id)/sessions/\(session.id)/messages", method: .get, headers: .auth(operatorKey))
                    let named = (operatorView.json["data"] as? [[String: Any]] ?? []).first { $0["role"] as? String == "operator" }
                    #expect(named?["operatorName"] as? String == "Olga")

                    // Every mode change is logged with who made it.
                    let row = try #require(try await env.stores.liveSupport.session(widgetID: widget.id, sessionID: session.id))
                    let log = try await env.stores.liveSupport.events(sessionRowID: row.id)
                    let changes = log.filter { $0.kind == .mode }.map { "\($0.mode.rawValue):\($0.actorName ?? "visitor")" }
                    #expect(changes == ["waiting:visitor", "human:Olga", "ai:Olga"])

                    let close = try await client.execute(
                        uri: "/api/v1/widgets/\(widget.id)/sessions/\(session.id)/close", method: .post, headers: .auth(operatorKey))
                    #expect(close.json["closed"] as? Bool == true)
                    #expect(try await live.waitForEvent(operatorsChannel) {
                        Self.data($0)["kind"] as? String == "mode_changed" && Self.data($0)["closed"] as? Bool == true
                    } != nil)
                    let afterClose = try await Self.visitorPost(client, publicID: widget.publicID, session: session, "hello?")
                    #expect(afterClose.status == .conflict && afterClose.errorCode == "session_closed")
                }
            }
        }
    }

    /// An AI reply stored after a takeover (a worker that finished before it saw the stop) is
    /// never delivered: the deliverer withholds it, nothing reaches the session channel, and the
    /// visitor's transcript leaves it out.
    /// The widget sends each message with an Idempotency-Key and resends it with the same key
    /// when the answer did not arrive: the message is stored, published and answered once, in
    /// `ai` mode and in `human` mode alike.
    @Test func aVisitorsRetriedMessageIsStoredOnce() async throws {
        try await TestEnvironment.with { env in
            let live = Live(env: env)
            let (_, ownerKey) = try await env.makeUser()
            try await env.withWorker(deliveries: live.deliveries) {
                try await live.application().test(.router) { client in
                    let widget = try await Self.createWidget(client, key: ownerKey)
                    let session = try await Self.openSession(client, publicID: widget.publicID)
                    let sessionChannel = "widget:session.\(widget.publicID).\(session.id)"
                    func transcript() async throws -> [[String: Any]] {
                        let page = try await client.execute(
                            uri: "/api/v1/widget/\(widget.publicID)/sessions/\(session.id)/messages", method: .get, headers: .auth(session.token))
                        return page.json["data"] as? [[String: Any]] ?? []
                    }

                    let first = try await Self.visitorPost(client, publicID: widget.publicID, session: session, "hello", idempotencyKey: "m-1")
                    let again = try await Self.visitorPost(client, publicID: widget.publicID, session: session, "hello", idempotencyKey: "m-1")
                    #expect(first.status == .accepted && again.status == .accepted)
                    #expect(again.json["messageId"] as? Int == first.json["messageId"] as? Int)
                    #expect(again.json["events"] as? String == first.json["events"] as? String)
                    _ = try #require(try await live.waitForEvent(sessionChannel) { Self.data($0)["role"] as? String == "assistant" })
                    let visitorMessages = try await live.events(sessionChannel).filter { Self.data($0)["role"] as? String == "visitor" }
                    #expect(visitorMessages.count == 1, "published once")
                    #expect(try await transcript().count == 2, "one question, one answer")

                    let other = try await Self.visitorPost(client, publicID: widget.publicID, session: session, "bye", idempotencyKey: "m-1")
                    #expect(other.status == .unprocessableContent)
                    #expect(other.errorCode == "idempotency_key_reused")

                    // Human mode: stored without a turn, and still once.
                    let takeover = try await client.execute(
                        uri: "/api/v1/widgets/\(widget.id)/sessions/\(session.id)/takeover", method: .post, headers: .auth(ownerKey))
                    #expect(takeover.status == .ok)
                    let human = try await Self.visitorPost(client, publicID: widget.publicID, session: session, "a person?", idempotencyKey: "m-2")
                    let humanAgain = try await Self.visitorPost(client, publicID: widget.publicID, session: session, "a person?", idempotencyKey: "m-2")
                    #expect(human.json["mode"] as? String == "human" && human.json["events"] == nil)
                    #expect(humanAgain.json["messageId"] as? Int == human.json["messageId"] as? Int)
                    #expect(try await transcript().filter { $0["content"] as? String == "a person?" }.count == 1)
                    // A key longer than 255 bytes is a 400 naming the header, and nothing is stored.
                    let before = try await transcript().count
                    let long = try await Self.visitorPost(
                        client, publicID: widget.publicID, session: session, "too long a key", idempotencyKey: String(repeating: "k", count: 256))
                    #expect(long.status == .badRequest)
                    #expect(long.errorMessage?.hasPrefix("Idempotency-Key") == true)
                    #expect(try await transcript().count == before)
                    // The same key in another session is that session's own.
                    let otherSession = try await Self.openSession(client, publicID: widget.publicID)
                    let elsewhere = try await Self.visitorPost(client, publicID: widget.publicID, session: otherSession, "hello", idempotencyKey: "m-1")
                    #expect(elsewhere.status == .accepted && elsewhere.json["messageId"] as? Int != first.json["messageId"] as? Int)
                }
            }
        }
    }

    @Test func aReplyFinishingAfterATakeoverIsWithheld() async throws {
        try await TestEnvironment.with { env in
            let live = Live(env: env)
            let (_, ownerKey) = try await env.makeUser()
            try await live.application().test(.router) { client in
                let widget = try await Self.createWidget(client, key: ownerKey)
                let session = try await Self.openSession(client, publicID: widget.publicID)
                let asked = try await Self.visitorPost(client, publicID: widget.publicID, session: session, "slow question")
                let questionID = Int64(asked.json["messageId"] as? Int ?? 0)
                let takeover = try await client.execute(
                    uri: "/api/v1/widgets/\(widget.id)/sessions/\(session.id)/takeover", method: .post, headers: .auth(ownerKey))
                #expect(takeover.status == .ok)

                // The reply a late worker stores anyway.
                let question = try #require(try await env.stores.messages.message(id: questionID))
                let late = try await env.stores.messages.insertMessage(NewMessage(
                    chatID: question.chatID, ownerID: question.ownerID, role: .assistant, content: "LATE AI TEXT", status: .completed,
                    channel: .widget, replyToID: question.id))
                let outcome = try await DeliveryRunner(messages: env.stores.messages, deliveries: live.deliveries)
                    .run(replyID: late.id, logger: TestEnvironment.logger)
                #expect(outcome == .withheld)
                #expect(try await env.stores.messages.message(id: late.id)?.deliveredAt == nil)

                // Handing back does not release it either: it was asked under the earlier mode.
                _ = try await client.execute(
                    uri: "/api/v1/widgets/\(widget.id)/sessions/\(session.id)/handback", method: .post, headers: .auth(ownerKey))
                let again = try await DeliveryRunner(messages: env.stores.messages, deliveries: live.deliveries)
                    .run(replyID: late.id, logger: TestEnvironment.logger)
                #expect(again == .withheld)

                let sessionChannel = "widget:session.\(widget.publicID).\(session.id)"
                _ = try await live.waitForEvent(sessionChannel) { Self.data($0)["mode"] as? String == "ai" }
                let events = try await live.events(sessionChannel)
                #expect(!events.contains { Self.data($0)["content"] as? String == "LATE AI TEXT" })
                let transcript = try await client.execute(
                    uri: "/api/v1/widget/\(widget.publicID)/sessions/\(session.id)/messages", method: .get, headers: .auth(session.token))
                #expect(!(transcript.json["data"] as? [[String: Any]] ?? []).contains { $0["content"] as? String == "LATE AI TEXT" })
            }
        }
    }

    /// A takeover during a slow AI turn stops it: its stream ends as stopped and no AI text
    /// reaches the session channel.
    @Test func aTakeoverStopsARunningTurn() async throws {
        try await TestEnvironment.with { env in
            let live = Live(env: env)
            let (_, ownerKey) = try await env.makeUser()
            // 5 s a word: the turn cannot end by itself while the test looks, however busy the machine.
            try await env.withWorker(responder: EchoResponder(chunkDelay: .seconds(5)), deliveries: live.deliveries) {
                try await live.application().test(.router) { client in
                    let widget = try await Self.createWidget(client, key: ownerKey)
                    let session = try await Self.openSession(client, publicID: widget.publicID)
                    let asked = try await Self.visitorPost(
                        client, publicID: widget.publicID, session: session, "tell me a long story about many things")
                    let questionID = Int64(asked.json["messageId"] as? Int ?? 0)
                    // Wait until the turn runs (the assistant is typing on the typing channel meanwhile).
                    let running = try await eventually(within: .seconds(30)) {
                        try await env.stores.messages.message(id: questionID)?.status == .running
                    }
                    try #require(running, "the turn never started")
                    let takeover = try await client.execute(
                        uri: "/api/v1/widgets/\(widget.id)/sessions/\(session.id)/takeover", method: .post, headers: .auth(ownerKey))
                    #expect(takeover.status == .ok)
                    _ = try await eventually(within: .seconds(30)) {
                        try await env.stores.messages.message(id: questionID)?.status.isFinal == true
                    }
                    #expect(try await env.stores.messages.message(id: questionID)?.status == .cancelled)
                    let events = try await live.events("widget:session.\(widget.publicID).\(session.id)")
                    #expect(!events.contains { Self.data($0)["role"] as? String == "assistant" })
                }
            }
        }
    }

    @Test func crossBoundaryAttemptsAreRefused() async throws {
        try await TestEnvironment.with { env in
            let live = Live(env: env)
            let (_, ownerKey) = try await env.makeUser()
            try await live.application().test(.router) { client in
                let a = try await Self.createWidget(client, key: ownerKey)
                let b = try await Self.createWidget(client, key: ownerKey)
                let sessionA = try await Self.openSession(client, publicID: a.publicID)
                let sessionA2 = try await Self.openSession(client, publicID: a.publicID)

                // Another widget's session: 404, even with its own token.
                let otherWidget = try await Self.visitorPost(client, publicID: b.publicID, session: sessionA, "hi")
                #expect(otherWidget.status == .notFound)
                // Another visitor's session with my token: 401.
                let otherVisitor = try await Self.visitorPost(client, publicID: a.publicID, session: sessionA2, "hi", token: sessionA.token)
                #expect(otherVisitor.status == .unauthorized && otherVisitor.errorCode == "unauthorized")
                let missing = try await client.execute(
                    uri: "/api/v1/widget/\(a.publicID)/sessions/\(sessionA.id)/messages", method: .get)
                #expect(missing.status == .unauthorized)
                let unknown = try await client.execute(uri: "/api/v1/widget/wgt_nope/config", method: .get)
                #expect(unknown.status == .notFound)

                // A visitor's token names only its own two channels.
                let caps = Self.claims(sessionA.realtime["token"] as? String ?? "")["caps"] as? [[String: Any]] ?? []
                let allowed = Set(caps.flatMap { $0["channels"] as? [String] ?? [] })
                #expect(allowed == ["widget:session.\(a.publicID).\(sessionA.id)", "widgettyping:\(a.publicID).\(sessionA.id)"])
                let fresh = try await client.execute(
                    uri: "/api/v1/widget/\(a.publicID)/sessions/\(sessionA.id)/realtime-token", method: .post, headers: .auth(sessionA.token))
                #expect(fresh.status == .ok && (fresh.json["channels"] as? [String: String])?["session"] == "widget:session.\(a.publicID).\(sessionA.id)")

                // Origins: a disallowed one is refused, an allowed one gets CORS headers, preflight included.
                let evil: HTTPFields = [.origin: "https://evil.example", .authorization: "Bearer \(sessionA.token)", .contentType: "application/json"]
                let refused = try await client.execute(uri: "/api/v1/widget/\(a.publicID)/config", method: .get, headers: evil)
                #expect(refused.status == .forbidden && refused.errorCode == "origin_not_allowed")
                let refusedPost = try await client.execute(
                    uri: "/api/v1/widget/\(a.publicID)/sessions/\(sessionA.id)/messages", method: .post, headers: evil, body: jsonBody(["content": "hi"]))
                #expect(refusedPost.status == .forbidden)
                let allowed1 = try await client.execute(
                    uri: "/api/v1/widget/\(a.publicID)/config", method: .get, headers: [.origin: "https://shop.example"])
                #expect(allowed1.status == .ok && allowed1.headers[.accessControlAllowOrigin] == "https://shop.example")
                let preflight = try await client.execute(
                    uri: "/api/v1/widget/\(a.publicID)/sessions/\(sessionA.id)/messages", method: .options,
                    headers: [.origin: "https://shop.example", .accessControlRequestMethod: "POST"])
                #expect(preflight.status == .noContent)
                #expect(preflight.headers[.accessControlAllowHeaders]?.contains("Authorization") == true)
                let badPreflight = try await client.execute(
                    uri: "/api/v1/widget/\(a.publicID)/sessions", method: .options, headers: [.origin: "https://evil.example"])
                #expect(badPreflight.status == .forbidden)
                let deniedError = try await client.execute(
                    uri: "/api/v1/widget/\(a.publicID)/sessions/\(sessionA.id)/messages", method: .get,
                    headers: [.origin: "https://shop.example"])
                #expect(deniedError.status == .unauthorized && deniedError.headers[.accessControlAllowOrigin] == "https://shop.example")
            }
        }
    }

    @Test func limitsAnswer429WithRetryAfter() async throws {
        try await TestEnvironment.with { env in
            let live = Live(env: env, sessionsPerIP: 2)
            let (_, ownerKey) = try await env.makeUser()
            try await live.application().test(.router) { client in
                let widget = try await Self.createWidget(client, key: ownerKey, limits: ["messagesPerMinute": 1, "messagesPerSession": 2])
                let session = try await Self.openSession(client, publicID: widget.publicID)
                let first = try await Self.visitorPost(client, publicID: widget.publicID, session: session, "one")
                #expect(first.status == .accepted)
                let second = try await Self.visitorPost(client, publicID: widget.publicID, session: session, "two")
                #expect(second.status == .tooManyRequests && second.errorCode == "rate_limited")
                #expect(Int(second.headers[HTTPField.Name("Retry-After")!] ?? "") ?? 0 >= 1)

                _ = try await Self.openSession(client, publicID: widget.publicID)
                let third = try await client.execute(uri: "/api/v1/widget/\(widget.publicID)/sessions", method: .post)
                #expect(third.status == .tooManyRequests && third.headers[HTTPField.Name("Retry-After")!] != nil)
            }
        }
    }

    /// `limits.messagesPerSession` counts the visitor's own messages, not the operator's replies.
    @Test func theSessionLimitCountsOnlyTheVisitorsMessages() async throws {
        try await TestEnvironment.with { env in
            let live = Live(env: env)
            let (_, ownerKey) = try await env.makeUser()
            try await live.application().test(.router) { client in
                let widget = try await Self.createWidget(client, key: ownerKey, limits: ["messagesPerMinute": 100, "messagesPerSession": 2])
                let session = try await Self.openSession(client, publicID: widget.publicID)
                _ = try await client.execute(
                    uri: "/api/v1/widgets/\(widget.id)/sessions/\(session.id)/takeover", method: .post, headers: .auth(ownerKey))
                for n in 0..<3 {
                    let reply = try await client.execute(
                        uri: "/api/v1/widgets/\(widget.id)/sessions/\(session.id)/messages", method: .post, headers: .auth(ownerKey),
                        body: jsonBody(["content": "operator \(n)"]))
                    #expect(reply.status == .created)
                }
                #expect(try await Self.visitorPost(client, publicID: widget.publicID, session: session, "one").status == .accepted)
                #expect(try await Self.visitorPost(client, publicID: widget.publicID, session: session, "two").status == .accepted)
                let third = try await Self.visitorPost(client, publicID: widget.publicID, session: session, "three")
                #expect(third.status == .tooManyRequests && third.headers[HTTPField.Name("Retry-After")!] != nil)
            }
        }
    }

    /// With the realtime side unreachable, visitor messages are still accepted, the turn is
    /// still answered and stored.
    @Test func publishingNeverFailsATurn() async throws {
        try await TestEnvironment.with { env in
            let live = Live(env: env, publisher: CentrifugoHTTPPublisher(url: "http://127.0.0.1:9", apiKey: "nobody-listens", timeout: .seconds(1)))
            let (_, ownerKey) = try await env.makeUser()
            try await env.withWorker(deliveries: live.deliveries) {
                try await live.application().test(.router) { client in
                    let widget = try await Self.createWidget(client, key: ownerKey)
                    let session = try await Self.openSession(client, publicID: widget.publicID)
                    let asked = try await Self.visitorPost(client, publicID: widget.publicID, session: session, "anyone there?")
                    #expect(asked.status == .accepted)
                    let questionID = Int64(asked.json["messageId"] as? Int ?? 0)
                    let deadline = ContinuousClock.now + .seconds(15)
                    while ContinuousClock.now < deadline, try await env.stores.messages.message(id: questionID)?.status != .completed {
                        try await Task.sleep(for: .milliseconds(25))
                    }
                    #expect(try await env.stores.messages.message(id: questionID)?.status == .completed)
                }
            }
        }
    }
}
