import CSocket
import Glibc
import NIOCore
import Synchronization
import Testing

@testable import Gateway

/// `SendBatch` on socket pairs: every frame reaches its own socket, each sender hears what its
/// socket took (all, part, or nothing when it is full or its peer is gone), in the order the
/// frames were added, with the kernel's io_uring and without it.
@Suite struct SendBatchTests {
    /// Whether this kernel gives the process an io_uring instance (without one, a batch allowed
    /// the ring sends with `send`).
    static let kernelHasRing: Bool = {
        guard let ring = sb_send_ring_create(8) else { return false }
        sb_send_ring_destroy(ring)
        return true
    }()

    final class Recorder: BatchSender {
        var outcomes: [(frame: String, written: Int?)] = []

        func sent(_ frame: ByteBuffer, written: Int?) {
            outcomes.append((String(buffer: frame), written))
        }
    }

    /// A connected pair of non-blocking stream sockets: `local` is sent on, `peer` read.
    struct Pair {
        let local: CInt
        let peer: CInt

        init(sendBuffer: CInt? = nil) throws {
            var fds: [CInt] = [-1, -1]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds) == 0 else {
                throw IOError(errnoCode: errno, reason: "socketpair")
            }
            local = fds[0]
            peer = fds[1]
            if var size = sendBuffer {
                setsockopt(local, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<CInt>.size))
            }
        }

        /// Everything the peer can read now.
        func received() -> String {
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = read(peer, &chunk, chunk.count)
                guard count > 0 else { break }
                bytes += chunk[..<count]
            }
            return String(decoding: bytes, as: UTF8.self)
        }

        /// Sends filler until the socket takes no more.
        func fill() {
            let filler = [UInt8](repeating: 0x2E, count: 65536)
            while send(local, filler, filler.count, Int32(MSG_NOSIGNAL)) > 0 {}
        }

        func close() {
            Glibc.close(local)
            Glibc.close(peer)
        }
    }

    /// 20 frames through a ring of 8 slots (three submissions), and with a `send` each.
    @Test(arguments: [true, false])
    func everyFrameReachesItsOwnSocket(useRing: Bool) throws {
        let pairs = try (0..<20).map { _ in try Pair() }
        defer { pairs.forEach { $0.close() } }
        let metrics = Metrics()
        let batch = SendBatch(useRing: useRing, entries: 8, metrics: metrics)
        let recorder = Recorder()
        for (index, pair) in pairs.enumerated() {
            batch.add(ByteBuffer(string: "frame \(index)"), socket: pair.local, sender: recorder)
        }
        batch.send()
        #expect(batch.usesRing == (useRing && Self.kernelHasRing))
        #expect(recorder.outcomes.map(\.frame) == (0..<20).map { "frame \($0)" })
        #expect(recorder.outcomes.map(\.written) == (0..<20).map { Optional("frame \($0)".utf8.count) })
        #expect(pairs.map { $0.received() } == (0..<20).map { "frame \($0)" })
        #expect(metrics.ioUringSends.load(ordering: .relaxed) == (batch.usesRing ? 20 : 0))

        // The batch is empty again: a second round sends only its own frames.
        batch.add(ByteBuffer(string: "again"), socket: pairs[3].local, sender: recorder)
        batch.add(ByteBuffer(string: "and again"), socket: pairs[4].local, sender: recorder)
        batch.send()
        #expect(recorder.outcomes.count == 22)
        #expect(pairs.map { $0.received() }.filter { !$0.isEmpty } == ["again", "and again"])
    }

    /// A full socket takes nothing (the sender hands the frame on); a socket whose peer is gone
    /// fails without a SIGPIPE; the sockets around them are not affected.
    @Test(arguments: [true, false])
    func fullAndBrokenSocketsReportWhatTheyTook(useRing: Bool) throws {
        let before = try Pair(), full = try Pair(sendBuffer: 4096), broken = try Pair(), after = try Pair()
        defer { [before, full, after].forEach { $0.close() } }
        full.fill()
        Glibc.close(broken.peer)
        defer { Glibc.close(broken.local) }
        let batch = SendBatch(useRing: useRing)
        let recorder = Recorder()
        let big = String(repeating: "y", count: 1000)
        batch.add(ByteBuffer(string: "first"), socket: before.local, sender: recorder)
        batch.add(ByteBuffer(string: big), socket: full.local, sender: recorder)
        batch.add(ByteBuffer(string: "lost"), socket: broken.local, sender: recorder)
        batch.add(ByteBuffer(string: "last"), socket: after.local, sender: recorder)
        batch.send()
        #expect(batch.usesRing == (useRing && Self.kernelHasRing))
        #expect(recorder.outcomes.map(\.frame) == ["first", big, "lost", "last"])
        #expect(recorder.outcomes.map(\.written) == [5, 0, 0, 4])
        #expect(before.received() == "first")
        #expect(after.received() == "last")
    }

    /// A batch of one frame is a plain `send`, even with the ring allowed.
    @Test func oneFrameIsAPlainSend() throws {
        let pair = try Pair()
        defer { pair.close() }
        let batch = SendBatch(useRing: true)
        let recorder = Recorder()
        batch.add(ByteBuffer(string: "alone"), socket: pair.local, sender: recorder)
        batch.send()
        #expect(!batch.usesRing)
        #expect(recorder.outcomes.map(\.written) == [5])
        #expect(pair.received() == "alone")
    }
}
