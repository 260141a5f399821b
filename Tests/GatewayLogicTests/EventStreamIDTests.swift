import Testing

@testable import Gateway

/// The event id an `EventSource` stream carries and sends back as `Last-Event-ID`: every position
/// survives the round trip whatever the channel is called, and what is not ours reads as nothing.
@Suite struct EventStreamIDTests {
    static func subscription(offset: UInt64, epoch: String, tracks: Bool = true) -> ConnectionState.Subscription {
        var subscription = ConnectionState.Subscription()
        subscription.tracksPosition = tracks
        subscription.offset = offset
        subscription.epoch = epoch
        return subscription
    }

    @Test func positionsSurviveTheRoundTripWhateverTheChannelsAreCalled() throws {
        let subscriptions = [
            "chat:news": Self.subscription(offset: 42, epoch: "ab12"),
            "a b,c/d%e\nf": Self.subscription(offset: 0, epoch: "x/y"),
            "été#u1,u2": Self.subscription(offset: UInt64.max, epoch: ""),
            "untracked": Self.subscription(offset: 7, epoch: "z", tracks: false),
        ]
        let id = try #require(EventStreamID.encode(subscriptions))
        // What an SSE `id:` field may not hold, and what would split it, is escaped.
        #expect(!id.contains("\n") && !id.contains("\r") && !id.contains(" "), "\(id)")
        #expect(id.split(separator: ",").count == 3, "\(id)")
        #expect(id.contains("chat:news/42/ab12"), "\(id)")
        let positions = try #require(EventStreamID.decode(Substring(id)))
        #expect(
            positions == [
                "chat:news": .init(offset: 42, epoch: "ab12"),
                "a b,c/d%e\nf": .init(offset: 0, epoch: "x/y"),
                "été#u1,u2": .init(offset: UInt64.max, epoch: ""),
            ])
    }

    @Test func theIDIsOrderedByChannelAndAbsentWithoutPositions() {
        let one = EventStreamID.encode(["b": Self.subscription(offset: 1, epoch: "e"), "a": Self.subscription(offset: 2, epoch: "e")])
        #expect(one == "a/2/e,b/1/e")
        #expect(EventStreamID.encode([:]) == nil)
        #expect(EventStreamID.encode(["a": Self.subscription(offset: 1, epoch: "e", tracks: false)]) == nil)
    }

    /// A lone plain subscription's id is its parts (nothing made per delivery); written out, every
    /// form is the id's text, in the bytes its `count` says.
    @Test func aLoneSubscriptionsIDIsItsPartsAndWritesAsItsText() {
        let plain = ["chat:news": Self.subscription(offset: 1_234_567, epoch: "ab12")]
        #expect(EventStreamID.make(plain) == .one(channel: "chat:news", offset: 1_234_567, epoch: "ab12"))
        let escaped = ["a b": Self.subscription(offset: 0, epoch: "e")]
        #expect(EventStreamID.make(escaped) == .text("a%20b/0/e"))
        let two = ["b": Self.subscription(offset: 10, epoch: "e"), "a": Self.subscription(offset: 9, epoch: "e")]
        #expect(EventStreamID.make(two) == .text("a/9/e,b/10/e"))
        #expect(EventStreamID.make(["a": Self.subscription(offset: 1, epoch: "e", tracks: false)]) == nil)
        for value in [EventStreamID.make(plain)!, .one(channel: "c", offset: 0, epoch: ""), .one(channel: "c", offset: .max, epoch: "x"), .text("a/9/e,b/10/e")] {
            var bytes = [UInt8](repeating: 0, count: value.count + 8)
            let written = bytes.withUnsafeMutableBytes { value.write(to: $0) }
            #expect(written == value.count)
            #expect(String(decoding: bytes[..<written], as: UTF8.self) == value.text)
        }
        #expect(EventStreamID.make(plain)?.text == EventStreamID.encode(plain))
    }

    @Test(arguments: [
        "", "a", "a/1", "a/1/e/x", "a/x/e", "a/-1/e", "/1/e", "a/1/e,", "a/1/e,a/2/e", "a%zz/1/e", "a%2/1/e", "a b/1/e",
        "%FF/1/e",
    ])
    func whatIsNotOurIDReadsAsNothing(_ text: String) {
        #expect(EventStreamID.decode(Substring(text)) == nil, "\(text)")
    }

    @Test func tooManyChannelsOrTooLongReadsAsNothing() {
        let many = (0...EventStreamID.maxEntries).map { "c\($0)/1/e" }.joined(separator: ",")
        #expect(EventStreamID.decode(Substring(many)) == nil)
        let within = (0..<EventStreamID.maxEntries).map { "c\($0)/1/e" }.joined(separator: ",")
        #expect(EventStreamID.decode(Substring(within))?.count == EventStreamID.maxEntries)
        #expect(EventStreamID.decode(Substring("a/1/" + String(repeating: "e", count: EventStreamID.maxLength)) ) == nil)
    }
}
