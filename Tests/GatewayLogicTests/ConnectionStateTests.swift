import SwitchboardCore
import Testing

@testable import Gateway

/// The connection's protocol state machine as a value: which command may run in which state, the
/// connect/refresh/subscribe/unsubscribe/close transitions and the timers, without a node or a socket.
@Suite struct ConnectionStateTests {
    func command(_ text: String) throws -> Command {
        try Command(json: #require(JSONValue.parse(Array(text.utf8))))
    }

    func connected(user: String = "42", now: Int64 = 1000, expiresAt: Int64? = nil, firstPingAt: Int64 = 1020) -> ConnectionState {
        var state = ConnectionState()
        _ = state.connect(user: user, connInfo: #"{"n":1}"#, expiresAt: expiresAt, now: now, firstPingAt: firstPingAt)
        return state
    }

    func configuration(_ configure: (inout GatewayConfiguration) -> Void = { _ in }) -> GatewayConfiguration {
        var configuration = GatewayConfiguration()
        configuration.pingInterval = 25
        configuration.pongTimeout = 8
        configuration.expiryGrace = 5
        configuration.presenceTTL = 60
        configure(&configuration)
        return configuration
    }

    /// The admission as a word, to compare whole tables.
    func admission(_ state: ConnectionState, _ text: String) throws -> String {
        switch state.admit(try command(text)) {
        case .skip: return "skip"
        case .accept: return "accept"
        case .connect(let id, _): return "connect \(id)"
        case .run(let id): return "run \(id)"
        case .disconnect(let disconnect): return "disconnect \(disconnect.code)"
        }
    }

    @Test func connectMustComeFirstWithAnID() throws {
        let state = ConnectionState()
        #expect(try admission(state, #"{"id":1,"connect":{"token":"t"}}"#) == "connect 1")
        #expect(try admission(state, #"{"connect":{}}"#) == "disconnect 3501")
        #expect(try admission(state, #"{"id":1,"subscribe":{"channel":"a"}}"#) == "disconnect 3501")
        #expect(try admission(state, #"{"send":{"data":1}}"#) == "disconnect 3501")
        #expect(try admission(state, "{}") == "skip")
    }

    @Test func aConnectedClientRunsCommandsWithIDs() throws {
        let state = connected()
        #expect(try admission(state, #"{"id":2,"subscribe":{"channel":"a"}}"#) == "run 2")
        #expect(try admission(state, #"{"id":3,"ping":{}}"#) == "run 3")
        #expect(try admission(state, #"{"id":4,"rpc":{"method":"m"}}"#) == "run 4")
        #expect(try admission(state, #"{"send":{"data":1}}"#) == "accept")
        #expect(try admission(state, #"{"id":5,"send":{"data":1}}"#) == "accept")
        #expect(try admission(state, #"{"subscribe":{"channel":"a"}}"#) == "disconnect 3501")
        #expect(try admission(state, #"{"id":6,"connect":{}}"#) == "disconnect 3501")
        #expect(try admission(state, "{}") == "skip")
    }

    @Test func aClosedConnectionTakesNothing() throws {
        var state = connected()
        _ = state.close()
        for text in [#"{"id":1,"connect":{}}"#, #"{"id":2,"subscribe":{"channel":"a"}}"#, #"{"send":{}}"#, "{}"] {
            #expect(try admission(state, text) == "skip")
        }
    }

    @Test func connectHappensOnceAndNotAfterClose() {
        var state = ConnectionState()
        let connect1 = state.connect(user: "7", connInfo: #"{"n":1}"#, expiresAt: 2000, now: 1000, firstPingAt: 1015)
        #expect(connect1)
        #expect(state.status == .connected)
        #expect(state.user == "7" && state.connInfo == #"{"n":1}"# && state.expiresAt == 2000)
        #expect(state.nextPingAt == 1015 && state.lastPresenceRefresh == 1000)
        let connect2 = state.connect(user: "8", connInfo: nil, expiresAt: nil, now: 1001, firstPingAt: 1016)
        #expect(!connect2)
        #expect(state.user == "7")

        var closed = ConnectionState()
        let closing1 = closed.close()
        #expect(closing1 != nil)
        let connect3 = closed.connect(user: "7", connInfo: nil, expiresAt: nil, now: 1000, firstPingAt: 1015)
        #expect(!connect3)
        #expect(closed.status == .closed)
    }

    @Test func theFirstPingComesInTheSecondHalfOfTheInterval() {
        for _ in 0..<200 {
            let at = ConnectionState.firstPingAt(now: 1000, pingInterval: 25)
            #expect((1012...1025).contains(at))
        }
        #expect(ConnectionState.firstPingAt(now: 1000, pingInterval: 1) == 1001)
    }

    @Test func refreshKeepsTheUserAndExtendsTheExpiry() {
        var state = connected(expiresAt: 2000)
        let refresh1 = state.refresh(user: "42", expiresAt: 3000, connInfo: nil)
        #expect(refresh1)
        #expect(state.expiresAt == 3000 && state.connInfo == #"{"n":1}"#)
        let refresh2 = state.refresh(user: "42", expiresAt: nil, connInfo: #"{"n":2}"#)
        #expect(refresh2)
        #expect(state.expiresAt == nil && state.connInfo == #"{"n":2}"#)
        let refresh3 = state.refresh(user: "43", expiresAt: 4000, connInfo: nil)
        #expect(!refresh3)
        #expect(state.expiresAt == nil)
    }

    @Test func subscriptionsAreLimitedAndUnique() {
        var state = ConnectionState()
        let addSubscription1 = state.addSubscription("a", .init(), limit: 2)
        #expect(addSubscription1 == .internal)
        state = connected()
        let addSubscription2 = state.addSubscription("a", .init(), limit: 2)
        #expect(addSubscription2 == nil)
        let addSubscription3 = state.addSubscription("a", .init(), limit: 2)
        #expect(addSubscription3 == .alreadySubscribed)
        let addSubscription4 = state.addSubscription("b", .init(), limit: 2)
        #expect(addSubscription4 == nil)
        let addSubscription5 = state.addSubscription("c", .init(), limit: 2)
        #expect(addSubscription5 == .limitExceeded)
        #expect(state.subscriptions["a"]?.buffering == true)

        let refreshSubscription1 = state.refreshSubscription("a", expiresAt: 5000)
        #expect(refreshSubscription1)
        #expect(state.subscriptions["a"]?.expiresAt == 5000)
        let refreshSubscription2 = state.refreshSubscription("c", expiresAt: 5000)
        #expect(!refreshSubscription2)
        let removeSubscription1 = state.removeSubscription("a")
        #expect(removeSubscription1 != nil)
        let removeSubscription2 = state.removeSubscription("a")
        #expect(removeSubscription2 == nil)
        let addSubscription6 = state.addSubscription("c", .init(), limit: 2)
        #expect(addSubscription6 == nil)
    }

    @Test func closingHandsOverTheSubscriptionsOnce() throws {
        var state = connected()
        _ = state.addSubscription("a", .init(), limit: 10)
        let closing2 = state.close()
        let closed = try #require(closing2)
        #expect(closed.user == "42" && closed.wasConnected && Array(closed.subscriptions.keys) == ["a"])
        #expect(state.subscriptions.isEmpty && state.status == .closed)
        let closing3 = state.close()
        #expect(closing3 == nil)

        var never = ConnectionState()
        let closing4 = never.close()
        #expect(closing4?.wasConnected == false)
    }

    @Test func aConnectionWithoutConnectGoesStaleAfterTenSeconds() {
        var state = ConnectionState()
        let tick1 = state.tick(now: 1010, createdAt: 1000, clientID: "c", settings: .init(configuration()))
        #expect(tick1.action == .none)
        let tick2 = state.tick(now: 1011, createdAt: 1000, clientID: "c", settings: .init(configuration()))
        #expect(tick2.action == .disconnect(.stale))
        var closed = ConnectionState()
        _ = closed.close()
        let tick3 = closed.tick(now: 5000, createdAt: 1000, clientID: "c", settings: .init(configuration()))
        #expect(tick3.action == .none)
    }

    @Test func pingsOnScheduleAndClosesWithoutPong() {
        var state = connected(firstPingAt: 1020)
        let configuration = configuration()
        let tick4 = state.tick(now: 1019, createdAt: 1000, clientID: "c", settings: .init(configuration))
        #expect(tick4.action == .none)
        let tick5 = state.tick(now: 1020, createdAt: 1000, clientID: "c", settings: .init(configuration))
        #expect(tick5.action == .ping)
        #expect(state.nextPingAt == 1045 && state.pongDeadline == 1028)
        let tick6 = state.tick(now: 1028, createdAt: 1000, clientID: "c", settings: .init(configuration))
        #expect(tick6.action == .none)
        let tick7 = state.tick(now: 1029, createdAt: 1000, clientID: "c", settings: .init(configuration))
        #expect(tick7.action == .disconnect(.noPong))

        var answered = connected(firstPingAt: 1020)
        _ = answered.tick(now: 1020, createdAt: 1000, clientID: "c", settings: .init(configuration))
        answered.pongDeadline = nil  // the pong
        let tick8 = answered.tick(now: 1040, createdAt: 1000, clientID: "c", settings: .init(configuration))
        #expect(tick8.action == .none)
        let tick9 = answered.tick(now: 1045, createdAt: 1000, clientID: "c", settings: .init(configuration))
        #expect(tick9.action == .ping)
    }

    @Test func anExpiredConnectionClosesAfterTheGrace() {
        var state = connected(expiresAt: 2000, firstPingAt: 9999)
        let tick10 = state.tick(now: 2005, createdAt: 1000, clientID: "c", settings: .init(configuration()))
        #expect(tick10.action == .none)
        let tick11 = state.tick(now: 2006, createdAt: 1000, clientID: "c", settings: .init(configuration()))
        #expect(tick11.action == .disconnect(.expired))
    }

    @Test func expiredSubscriptionsAndDuePresenceAreReported() {
        var state = connected(firstPingAt: 9999)
        var expiring = ConnectionState.Subscription()
        expiring.expiresAt = 1100
        expiring.buffering = false
        var present = ConnectionState.Subscription()
        present.presence = true
        present.buffering = false
        present.chanInfo = #"{"r":1}"#
        var preparing = ConnectionState.Subscription()
        preparing.presence = true
        _ = state.addSubscription("expiring", expiring, limit: 10)
        _ = state.addSubscription("present", present, limit: 10)
        _ = state.addSubscription("preparing", preparing, limit: 10)
        let configuration = configuration()

        let early = state.tick(now: 1019, createdAt: 1000, clientID: "c", settings: .init(configuration))
        #expect(early.expiredSubscriptions.isEmpty && early.presenceRefreshes.isEmpty)

        let due = state.tick(now: 1020, createdAt: 1000, clientID: "c", settings: .init(configuration))
        #expect(due.presenceRefreshes.map(\.channel) == ["present"])
        #expect(due.presenceRefreshes.first?.info == ClientInfo(user: "42", client: "c", connInfo: #"{"n":1}"#, chanInfo: #"{"r":1}"#))
        let tick12 = state.tick(now: 1021, createdAt: 1000, clientID: "c", settings: .init(configuration))
        #expect(tick12.presenceRefreshes.isEmpty)

        let tick13 = state.tick(now: 1105, createdAt: 1000, clientID: "c", settings: .init(configuration))
        #expect(tick13.expiredSubscriptions.isEmpty)
        let tick14 = state.tick(now: 1106, createdAt: 1000, clientID: "c", settings: .init(configuration))
        #expect(tick14.expiredSubscriptions == ["expiring"])
    }
}
