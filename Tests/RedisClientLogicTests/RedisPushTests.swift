import NIOCore
import NIOEmbedded
import Synchronization
import Testing

@testable import RedisClient

/// A subscriber connection's pushes read from the socket's bytes, and the replies between them.
@Suite("Redis pushes without a server")
struct RedisPushTests {
    static func bulk(_ bytes: some Collection<UInt8>) -> [UInt8] {
        Array("$\(bytes.count)\r\n".utf8) + Array(bytes) + Array("\r\n".utf8)
    }

    static func message(_ channel: String, _ payload: [UInt8]) -> [UInt8] {
        Array("*3\r\n".utf8) + bulk("message".utf8) + bulk(channel.utf8) + bulk(payload)
    }

    static func patternMessage(_ pattern: String, _ channel: String, _ payload: String) -> [UInt8] {
        Array("*4\r\n".utf8) + bulk("pmessage".utf8) + bulk(pattern.utf8) + bulk(channel.utf8) + bulk(payload.utf8)
    }

    static func subscribed(_ channel: String, _ count: Int) -> [UInt8] {
        Array("*3\r\n".utf8) + bulk("subscribe".utf8) + bulk(channel.utf8) + Array(":\(count)\r\n".utf8)
    }

    @Test func parsesAMessageAndAPatternMessageInPlace() throws {
        let payload = Array("p\n7\nab\n{\"x\":\"\r\n\"}".utf8)
        var buffer = ByteBuffer(bytes: Self.message("sb:ch", payload) + Self.patternMessage("sb:r*", "sb:r1", "hi"))
        guard case .push(let first) = RedisPush.parse(&buffer) else { Issue.record("no message"); return }
        #expect(String(buffer: first.channel) == "sb:ch")
        #expect(first.pattern == nil)
        #expect(Array(first.payload.readableBytesView) == payload)
        guard case .push(let second) = RedisPush.parse(&buffer) else { Issue.record("no pmessage"); return }
        #expect(second.pattern.map { String(buffer: $0) } == "sb:r*")
        #expect(String(buffer: second.channel) == "sb:r1")
        #expect(String(buffer: second.payload) == "hi")
        #expect(buffer.readableBytes == 0)
    }

    @Test func everyCutShortPushWaitsAndLeavesTheBufferAlone() {
        let whole = Self.message("sb:ch", Array("payload".utf8))
        for end in 0..<whole.count {
            var buffer = ByteBuffer(bytes: whole[..<end])
            guard case .incomplete = RedisPush.parse(&buffer) else {
                Issue.record("\(end) bytes of \(whole.count) were not incomplete")
                continue
            }
            #expect(buffer.readableBytes == end)
        }
    }

    @Test(arguments: [
        "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",  // a subscription's confirmation
        "*2\r\n$4\r\npong\r\n$0\r\n\r\n",  // PING while subscribed
        "+OK\r\n",
        ":1\r\n",
        "*3\r\n$7\r\nmessage\r\n$-1\r\n",  // not a shape Redis sends for a message
        "*3\r\n$7\r\nmessage\r\n$2\r\nchX\r\n",  // a length that does not match
        "*3\r\n$99999999999\r\n",
    ])
    func leavesEverythingElseToTheFullParser(_ text: String) {
        var buffer = ByteBuffer(string: text)
        guard case .other = RedisPush.parse(&buffer) else {
            Issue.record("\(text.debugDescription) was not left alone")
            return
        }
        #expect(buffer.readableBytes == text.utf8.count)
    }

    /// The one reply a batch of one got, as text; nil while it has none.
    static func replies(_ future: EventLoopFuture<[RESPValue]>) -> [String]? {
        var result: [String]?
        future.whenSuccess { result = $0.first?.array?.map { $0.string ?? $0.description } }
        return result
    }

    /// What one subscriber connection saw, in order.
    final class Seen: Sendable {
        let pushes = Mutex<[String]>([])
        func record(_ push: RedisPush) {
            let text = [push.pattern.map { String(buffer: $0) }, String(buffer: push.channel), String(buffer: push.payload)]
                .compactMap { $0 }.joined(separator: " ")
            pushes.withLock { $0.append(text) }
        }
    }

    /// The bytes a subscriber connection reads: confirmations, pushes and a command's reply mixed,
    /// cut into reads at every position (and at every pair of positions for a short stream).
    @Test func pushesAndRepliesKeepTheirOrderHoweverTheReadsAreCut() throws {
        // A reply whose element has a push's shape: read as the reply it is, however it is cut.
        let nested = Array("*1\r\n".utf8) + Self.message("x", Array("y".utf8))
        let stream =
            Self.subscribed("sb:a", 1) + Self.message("sb:a", Array("one".utf8))
            + Self.patternMessage("sb:r*", "sb:r1", "two") + Self.subscribed("sb:b", 2) + nested
            + Self.message("sb:b", Array("th\r\nree".utf8)) + Self.message("sb:a", [])
        let expected = ["sb:a one", "sb:r* sb:r1 two", "sb:b th\r\nree", "sb:a "]
        var cuts: [[Int]] = (0...stream.count).map { [$0] }
        for first in stride(from: 0, through: stream.count, by: 7) {
            for second in stride(from: first, through: stream.count, by: 5) { cuts.append([first, second]) }
        }
        for cut in cuts {
            let seen = Seen()
            let channel = EmbeddedChannel(handler: RESPHandler(pushHandler: { seen.record($0) }))
            let first = channel.eventLoop.makePromise(of: [RESPValue].self)
            let second = channel.eventLoop.makePromise(of: [RESPValue].self)
            let third = channel.eventLoop.makePromise(of: [RESPValue].self)
            channel.write(RedisRequest(buffer: ByteBuffer(), sink: .batch(first, count: 1)), promise: nil)
            channel.write(RedisRequest(buffer: ByteBuffer(), sink: .batch(second, count: 1)), promise: nil)
            channel.write(RedisRequest(buffer: ByteBuffer(), sink: .batch(third, count: 1)), promise: nil)
            var start = 0
            for end in cut + [stream.count] {
                try channel.writeInbound(ByteBuffer(bytes: stream[start..<end]))
                start = end
            }
            #expect(seen.pushes.withLock { $0 } == expected, "reads cut at \(cut)")
            #expect(Self.replies(first.futureResult) == ["subscribe", "sb:a", "(integer) 1"], "reads cut at \(cut)")
            #expect(Self.replies(second.futureResult) == ["subscribe", "sb:b", "(integer) 2"], "reads cut at \(cut)")
            #expect(Self.replies(third.futureResult) == [#"["message", "x", "y"]"#], "reads cut at \(cut)")
            _ = try channel.finish()
        }
    }
}
