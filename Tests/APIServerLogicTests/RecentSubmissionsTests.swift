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
