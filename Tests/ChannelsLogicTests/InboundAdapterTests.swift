import Channels
import Foundation
import SwitchboardCore
import Synchronization
import Testing

/// The inbound seam's contract, without servers: what the web chat hands to the intake, and that
/// an adapter's payload is parsed only after it was verified.
@Suite("Inbound adapters")
struct InboundAdapterTests {
    @Test func aWebSubmissionGoesToItsChatOrStartsOne() throws {
        let adapter = WebChatInbound()
        let existing = try adapter.accept(WebSubmission(userID: 3, content: "hi", chatID: 9, title: nil))
        #expect(existing == [InboundMessage(ownerID: 3, channel: .web, content: "hi", chat: .existing(9))])
        let new = try adapter.accept(WebSubmission(userID: 3, content: "hi", chatID: nil, title: "Plans"))
        #expect(new == [InboundMessage(ownerID: 3, channel: .web, content: "hi", chat: .new(title: "Plans"))])
    }

    /// A webhook-style adapter: a shared token in a header, one message per body line.
    final class TokenAdapter: InboundAdapter {
        let parsed = Mutex(0)
        var channel: Channel { .api }
        func verify(_ payload: InboundRequest) throws {
            guard payload.header("X-Token") == "s3cret" else { throw SwitchboardError(.unauthorized, status: 401, "bad token") }
        }
        func messages(in payload: InboundRequest) throws -> [InboundMessage] {
            parsed.withLock { $0 += 1 }
            return String(decoding: payload.body, as: UTF8.self).split(separator: "\n").enumerated().map { index, line in
                InboundMessage(ownerID: 1, channel: channel, content: String(line), chat: .thread(key: "peer", title: nil), externalID: "m\(index)")
            }
        }
    }

    @Test func nothingIsParsedFromAPayloadThatFailsVerification() throws {
        let adapter = TokenAdapter()
        let forged = InboundRequest(method: "POST", path: "/hook", headers: ["x-token": "guess"], body: Array("a\nb".utf8))
        #expect(throws: SwitchboardError.self) { try adapter.accept(forged) }
        #expect(adapter.parsed.withLock { $0 } == 0)
        let signed = InboundRequest(method: "POST", path: "/hook", headers: ["X-TOKEN": "s3cret"], body: Array("a\nb".utf8))
        #expect(try adapter.accept(signed).map(\.externalID) == ["m0", "m1"])
    }

    @Test func headerNamesAreCaseInsensitive() {
        let request = InboundRequest(method: "POST", path: "/", headers: ["X-Hub-Signature-256": "sha256=ab"], body: [])
        #expect(request.header("x-hub-signature-256") == "sha256=ab")
        #expect(request.header("X-HUB-SIGNATURE-256") == "sha256=ab")
    }

    @Test func aChatTitleIsTheFirstLineShortened() {
        #expect(ChannelIntake.title(from: "Where is my invoice?\nThanks") == "Where is my invoice?")
        #expect(ChannelIntake.title(from: "   ") == "New chat")
        let long = String(repeating: "x", count: 80)
        #expect(ChannelIntake.title(from: long) == String(repeating: "x", count: 59) + "…")
    }
}
