/// One event loop's fan-out sends gathered in a tick and made together: through an io_uring
/// instance of the loop's own (one system call for up to `SendBatch.ringEntries` sends), or one
/// `send` each where the kernel has no io_uring for the process.
import CSocket
import Glibc
import NIOCore
import Synchronization

/// What became of a send left to a `SendBatch`.
enum SendOutcome {
    /// The socket took every byte.
    case all
    /// The socket took `written` bytes of `whole` (the send's pieces joined; 0 when its buffer
    /// was full, or on an error NIO meets on its own write and closes the channel on).
    case part(whole: ByteBuffer, written: Int)
    /// The send was handed to the kernel and its outcome is unknown: the connection must end.
    case unknown
}

/// A transport whose flush can leave its one message to its loop's `SendBatch`.
protocol BatchSender: AnyObject {
    func sent(_ outcome: SendOutcome)
}

/// The sends of one `FlushBatcher` run, made together once every connection has added its own.
/// Used only on its batcher's event loop (hence unchecked); the ring is created there on first use,
/// so the loop's thread is the ring's only submitter.
final class SendBatch: @unchecked Sendable {
    /// Submission slots of a loop's ring: a larger batch goes in several system calls.
    static let ringEntries: UInt32 = 1024
    /// The most bytes a send may carry in front of its body (a WebSocket frame header; an event
    /// stream's chunk size, `id:` line and `data: `).
    static let maxHeadSize = 96

    private struct Entry {
        let socket: CInt
        /// Where the bytes in front of the body are in `heads` (empty for a whole frame).
        let head: Range<Int>
        let body: ByteBuffer
        /// Bytes after the body, in a static string's storage (empty for none).
        let tail: UnsafeRawBufferPointer
        let sender: any BatchSender
    }

    private enum Ring {
        case notTried
        case ready(OpaquePointer)
        case unavailable
    }

    private var ring: Ring
    private let entryCount: UInt32
    private let metrics: Metrics?
    private var entries: [Entry] = []
    private var heads: [UInt8] = []
    private var sockets: [CInt] = []
    private var parts: [iovec] = []
    private var partCounts: [UInt32] = []
    private var results: [CInt] = []

    /// `useRing`: false sends each message with its own system call (the `fanout_io_uring`
    /// setting off). `entries`: the ring's submission slots.
    init(useRing: Bool, entries: UInt32 = SendBatch.ringEntries, metrics: Metrics? = nil) {
        ring = useRing ? .notTried : .unavailable
        entryCount = entries
        self.metrics = metrics
    }

    deinit {
        if case .ready(let pointer) = ring { sb_send_ring_destroy(pointer) }
    }

    /// Whether sends go through io_uring; set once a batch has tried to create the ring.
    var usesRing: Bool {
        if case .ready = ring { return true }
        return false
    }

    /// Sends added and not yet sent.
    var count: Int { entries.count }

    /// Adds `frame` for `socket`; `sender` hears what became of it once the batch is sent.
    func add(_ frame: ByteBuffer, socket: CInt, sender: any BatchSender) {
        entries.append(Entry(socket: socket, head: 0..<0, body: frame, tail: UnsafeRawBufferPointer(start: nil, count: 0), sender: sender))
    }

    /// Adds `head` (copied; at most `maxHeadSize` bytes) followed by `body` and `tail` (nothing
    /// when empty), sent as one message.
    func add(head: UnsafeRawBufferPointer, body: ByteBuffer, tail: StaticString = "", socket: CInt, sender: any BatchSender) {
        precondition(head.count <= Self.maxHeadSize)
        let start = heads.count
        heads.append(contentsOf: head)
        let tail = UnsafeRawBufferPointer(start: tail.utf8Start, count: tail.utf8CodeUnitCount)
        entries.append(Entry(socket: socket, head: start..<heads.count, body: body, tail: tail, sender: sender))
    }

    /// Makes every send added since the last call and tells each sender its outcome, in the order
    /// they were added.
    func send() {
        guard !entries.isEmpty else { return }
        defer {
            entries.removeAll(keepingCapacity: true)
            heads.removeAll(keepingCapacity: true)
        }
        // One send is cheaper as a plain system call than through the ring.
        if entries.count > 1, let pointer = readyRing() {
            sendThroughRing(pointer)
            return
        }
        heads.withUnsafeBytes { heads in
            for entry in entries { report(entry, written: sendNow(entry, heads: heads), heads: heads) }
        }
    }

    /// `entry` with one `send` (or `sendmsg`, with a head or a tail).
    private func sendNow(_ entry: Entry, heads: UnsafeRawBufferPointer) -> Int {
        entry.body.withUnsafeReadableBytes { body in
            let head = UnsafeRawBufferPointer(rebasing: heads[entry.head])
            if !entry.tail.isEmpty { return SocketWrite.send(head, body, entry.tail, to: entry.socket) }
            return entry.head.isEmpty ? SocketWrite.send(body, to: entry.socket) : SocketWrite.send(head, body, to: entry.socket)
        }
    }

    /// Tells `entry`'s sender that `written` of its bytes went (nil: unknown).
    private func report(_ entry: Entry, written: Int?, heads: UnsafeRawBufferPointer) {
        guard let written else {
            entry.sender.sent(.unknown)
            return
        }
        let total = entry.head.count + entry.body.readableBytes + entry.tail.count
        guard written < total else {
            entry.sender.sent(.all)
            return
        }
        var whole = entry.body
        if !entry.head.isEmpty || !entry.tail.isEmpty {
            whole = ByteBuffer()
            whole.reserveCapacity(total)
            whole.writeBytes(UnsafeRawBufferPointer(rebasing: heads[entry.head]))
            whole.writeImmutableBuffer(entry.body)
            whole.writeBytes(entry.tail)
        }
        entry.sender.sent(.part(whole: whole, written: written))
    }

    private func readyRing() -> OpaquePointer? {
        switch ring {
        case .ready(let pointer): return pointer
        case .unavailable: return nil
        case .notTried:
            guard let pointer = sb_send_ring_create(entryCount) else {
                ring = .unavailable
                return nil
            }
            ring = .ready(pointer)
            return pointer
        }
    }

    private func sendThroughRing(_ pointer: OpaquePointer) {
        sockets.removeAll(keepingCapacity: true)
        parts.removeAll(keepingCapacity: true)
        partCounts.removeAll(keepingCapacity: true)
        heads.withUnsafeBytes { heads in
            for entry in entries {
                sockets.append(entry.socket)
                if !entry.head.isEmpty {
                    // `heads` is not changed until the batch is sent, so its storage stays put.
                    parts.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: heads.baseAddress! + entry.head.lowerBound), iov_len: entry.head.count))
                }
                // The body stays in `entries` until the batch is sent, so its storage stays put.
                let body = entry.body.withUnsafeReadableBytes { UnsafeMutableRawPointer(mutating: $0.baseAddress) }
                parts.append(iovec(iov_base: body, iov_len: entry.body.readableBytes))
                if !entry.tail.isEmpty {
                    parts.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: entry.tail.baseAddress), iov_len: entry.tail.count))
                }
                partCounts.append(1 + (entry.head.isEmpty ? 0 : 1) + (entry.tail.isEmpty ? 0 : 1))
            }
            results.removeAll(keepingCapacity: true)
            results.append(contentsOf: repeatElement(0, count: entries.count))
            let status = sockets.withUnsafeBufferPointer { sockets in
                parts.withUnsafeBufferPointer { parts in
                    partCounts.withUnsafeBufferPointer { partCounts in
                        results.withUnsafeMutableBufferPointer { results in
                            sb_send_ring_send(
                                pointer, sockets.baseAddress, parts.baseAddress, partCounts.baseAddress, results.baseAddress,
                                CInt(sockets.count))
                        }
                    }
                }
            }
            metrics?.ioUringSends.add(entries.count, ordering: .relaxed)
            if status != 0 {
                // The ring failed as a whole (not one socket's send): later batches use `send`.
                sb_send_ring_destroy(pointer)
                ring = .unavailable
            }
            for (entry, result) in zip(entries, results) {
                switch result {
                case CInt(SB_SEND_NOT_ATTEMPTED): report(entry, written: sendNow(entry, heads: heads), heads: heads)
                case CInt(SB_SEND_UNKNOWN): report(entry, written: nil, heads: heads)
                // A failed send took nothing (-EAGAIN: the socket's buffer is full; another error
                // NIO meets on its own write and closes the channel on), as `SocketWrite.send` says.
                default: report(entry, written: result >= 0 ? Int(result) : 0, heads: heads)
                }
            }
        }
    }
}
