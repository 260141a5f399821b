@testable import APIServer
import Foundation
import Testing

/// Which first requests of a connection the turn stream channel handlers take (the router then
/// decides the rest), and the `Date` header they write.
@Suite("Turn stream connections (logic)")
struct TurnStreamConnectionsLogicTests {
    @Test func onlyTheTurnStreamPathsAreTaken() {
        for path in [
            "/api/v1/messages/42/events",
            "/api/v1/messages/42/events?lastEventId=1-0",
            "/api/v1/widget/wgt_abc/sessions/7/messages/42/events",
            "/api/v1/messages/not-a-number/events",  // the router answers it (400/404)
        ] {
            #expect(TurnStreamConnections.isTurnStream(path), "\(path)")
        }
        for path in [
            nil, "", "/", "/api/v1/messages", "/api/v1/messages/42", "/api/v1/messages//events", "/api/v1/messages/stream",
            "/api/v1/messages/42/events/more", "/api/v2/messages/42/events", "/v1/messages/42/events",
            "/api/v1/chats/42/events", "/api/v1/widget/wgt_abc/sessions/7/messages/42", "/api/v1/messages/42/stop",
        ] as [String?] {
            #expect(!TurnStreamConnections.isTurnStream(path), "\(path ?? "nil")")
        }
    }

    /// Heartbeats: never a gap longer than the interval (proxies' idle timeouts rely on it), and
    /// drawn, so streams opened in the same instant spread their beats out.
    @Test func heartbeatGapsAreDrawnWithinTheLastFifthOfTheInterval() {
        let interval = Duration.seconds(15)
        let gaps = (0..<1_000).map { _ in TurnEventRelay.heartbeat(after: interval) }
        #expect(gaps.allSatisfy { $0 <= interval && $0 >= interval * 0.8 })
        #expect(gaps.max()! - gaps.min()! > .seconds(2), "the gaps are not spread")
    }

    @Test func theDateHeaderIsAnIMFFixdate() throws {
        let value = HTTPDate.now()
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        let parsed = try #require(formatter.date(from: value), "\(value)")
        #expect(abs(parsed.timeIntervalSinceNow) < 5)
        #expect(value.count == 29)
    }
}
