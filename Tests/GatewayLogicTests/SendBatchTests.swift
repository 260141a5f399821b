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

    /// Each outcome as the bytes the socket took (nil: unknown) and what is left of them.
    final class Recorder: BatchSender {
        var outcomes: [(written: Int?, rest: String)] = []
        /// The sizes of what was added, in order (what `.all` took).
        var sizes: [Int] = []

        func sent(_ outcome: SendOutcome) {
            switch outcome {
            case .all: outcomes.append((sizes[outcomes.count], ""))
            case .part(var whole, let written):
                whole.moveReaderIndex(forwardBy: written)
                outcomes.append((written, String(buffer: whole)))
            case .unknown: outcomes.append((nil, ""))
            }
        }

        func add(_ text: String, to batch: SendBatch, socket: CInt, head: String? = nil, tail: StaticString = "") {
            if let head {
                head.utf8CString.withUnsafeBytes { bytes in
                    batch.add(
                        head: UnsafeRawBufferPointer(rebasing: bytes.dropLast()), body: ByteBuffer(string: text), tail: tail,
                        socket: socket, sender: self)
                }
                sizes.append(head.utf8.count + text.utf8.count + tail.utf8CodeUnitCount)
            } else {
                batch.add(ByteBuffer(string: text), socket: socket, sender: self)
                sizes.append(text.utf8.count)
            }
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

    /// 20 sends through a ring of 8 slots (three submissions), and with a system call each:
    /// whole frames, every third one a head in front of its body, every fourth a head and a tail
    /// around it (an event stream's chunk), one message each, as `sendmsg`.
    @Test(arguments: [true, false])
    func everyMessageReachesItsOwnSocket(useRing: Bool) throws {
        let pairs = try (0..<20).map { _ in try Pair() }
        defer { pairs.forEach { $0.close() } }
        let metrics = Metrics()
        let batch = SendBatch(useRing: useRing, entries: 8, metrics: metrics)
        let recorder = Recorder()
        // The longest head an event stream's chunk carries: its size, an `id:` line, `data: `.
        let longHead = "1a\r\nid: " + String(repeating: "i", count: SendBatch.maxHeadSize - 15) + "\ndata: "
        func expected(_ index: Int) -> String {
            if index % 4 == 0 { return longHead + "frame \(index)\n\n\r\n" }
            return index % 3 == 0 ? "<\(index)>frame \(index)" : "frame \(index)"
        }
        for (index, pair) in pairs.enumerated() {
            if index % 4 == 0 {
                recorder.add("frame \(index)", to: batch, socket: pair.local, head: longHead, tail: "\n\n\r\n")
            } else {
                recorder.add("frame \(index)", to: batch, socket: pair.local, head: index % 3 == 0 ? "<\(index)>" : nil)
            }
        }
        batch.send()
        #expect(batch.usesRing == (useRing && Self.kernelHasRing))
        #expect(recorder.outcomes.map(\.written) == (0..<20).map { Optional(expected($0).utf8.count) })
        #expect(pairs.map { $0.received() } == (0..<20).map(expected))
        #expect(metrics.ioUringSends.load(ordering: .relaxed) == (batch.usesRing ? 20 : 0))

        // The batch is empty again: a second round sends only its own messages.
        recorder.add("again", to: batch, socket: pairs[3].local, head: "+")
        recorder.add("and again", to: batch, socket: pairs[4].local)
        batch.send()
        #expect(recorder.outcomes.count == 22)
        #expect(pairs.map { $0.received() }.filter { !$0.isEmpty } == ["+again", "and again"])
    }

    /// A full socket takes nothing: the sender gets the whole message back, its head in front.
    /// A socket whose peer is gone fails without a SIGPIPE. The sockets around them are not
    /// affected.
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
        recorder.add("first", to: batch, socket: before.local)
        recorder.add(big, to: batch, socket: full.local, head: "head:", tail: ":tail")
        recorder.add("lost", to: batch, socket: broken.local)
        recorder.add("last", to: batch, socket: after.local, head: "0:", tail: "\n")
        batch.send()
        #expect(batch.usesRing == (useRing && Self.kernelHasRing))
        #expect(recorder.outcomes.map(\.written) == [5, 0, 0, 7])
        #expect(recorder.outcomes.map(\.rest) == ["", "head:" + big + ":tail", "lost", ""])
        #expect(before.received() == "first")
        #expect(after.received() == "0:last\n")
    }

    /// A batch of one message is a plain system call, even with the ring allowed.
    @Test func oneMessageIsAPlainSend() throws {
        let pair = try Pair()
        defer { pair.close() }
        let batch = SendBatch(useRing: true)
        let recorder = Recorder()
        recorder.add("alone", to: batch, socket: pair.local, head: "1")
        batch.send()
        #expect(!batch.usesRing)
        #expect(recorder.outcomes.map(\.written) == [6])
        #expect(pair.received() == "1alone")
    }
}
