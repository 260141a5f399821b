@testable import APIServer
import Testing

@Suite("Recent submissions")
struct RecentSubmissionsTests {
    @Test func answersTheOwnerOfAMessageAcceptedHereAndNothingElse() {
        let recent = RecentSubmissions(capacity: 2)
        recent.accepted(messageID: 10, ownerID: 1)
        recent.accepted(messageID: 11, ownerID: 2)
        #expect(recent.owner(of: 10) == 1)
        #expect(recent.owner(of: 11) == 2)
        #expect(recent.owner(of: 12) == nil)
        // Full: the oldest goes first, the others stay.
        recent.accepted(messageID: 12, ownerID: 1)
        #expect(recent.owner(of: 10) == nil)
        #expect(recent.owner(of: 11) == 2)
        #expect(recent.owner(of: 12) == 1)
    }

    @Test func forgetsAMessageAfterItsLifetime() async throws {
        let recent = RecentSubmissions(lifetime: .milliseconds(50))
        recent.accepted(messageID: 7, ownerID: 3)
        #expect(recent.owner(of: 7) == 3)
        try await Task.sleep(for: .milliseconds(80))
        #expect(recent.owner(of: 7) == nil)
    }
}

/// The per-IP limit's idea of the client address behind proxies.
@Suite("Client address behind proxies")
struct ClientAddressTests {
    @Test func theAddressIsTakenFromTheRightSoASpoofedHeaderChangesNothing() {
        func client(_ lines: [String], proxies: Int) -> String {
            RateLimitMiddleware.clientIP(forwardedFor: lines, peer: "10.0.0.2", trustedProxies: proxies)
        }
        // No proxy trusted: the peer, whatever the header says.
        #expect(client(["6.6.6.6"], proxies: 0) == "10.0.0.2")
        // One proxy: it appended the address it saw; what the client wrote stands to its left.
        #expect(client(["6.6.6.6, 203.0.113.7"], proxies: 1) == "203.0.113.7")
        #expect(client(["203.0.113.7"], proxies: 1) == "203.0.113.7")
        // Two proxies, and header lines split across fields.
        #expect(client(["1.1.1.1, 203.0.113.7", "10.0.0.9"], proxies: 2) == "203.0.113.7")
        // Fewer hops than trusted proxies: the request did not come through them; the peer counts.
        #expect(client(["203.0.113.7"], proxies: 2) == "10.0.0.2")
        #expect(client([], proxies: 1) == "10.0.0.2")
    }
}
