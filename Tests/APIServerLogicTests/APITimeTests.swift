/// Times in query parameters (`GET /usage?since=`): every RFC 3339 form a client may send.
@testable import APIServer
import Foundation
import Testing

struct APITimeTests {
    @Test func readsRFC3339WithAndWithoutFractionsAndOffsets() throws {
        let plain = try #require(APITime.date("2026-01-31T00:00:00Z"))
        #expect(plain.timeIntervalSince1970 == 1_769_817_600)
        #expect(APITime.date("2026-01-31T00:00:00.250Z")?.timeIntervalSince1970 == 1_769_817_600.25)
        #expect(APITime.date("2026-01-31T01:30:00+01:30") == plain)
        #expect(APITime.date("2026-01-30T14:27:00.000-09:33") == plain)
        // RFC 3339 allows any hour in an offset; Foundation alone stops at 18.
        #expect(APITime.date("2026-01-30T02:27:00-21:33") == plain)
    }

    @Test func refusesWhatIsNoTime() {
        for text in ["", "yesterday", "2026-01-31", "2026-13-01T00:00:00Z", "1769817600", "2026-01-31T00:00:00+24:00", "2026-01-31T00:00:00+1:000"] {
            #expect(APITime.date(text) == nil, "\(text)")
        }
    }
}
