/// One event loop's fan-out sends gathered in a tick and made together: through an io_uring
/// instance of the loop's own (one system call for up to `SendBatch.ringEntries` sends), or one
/// `send` each where the kernel has no io_uring for the process.
import CSocket
import Glibc
import NIOCore
import Synchronization

/// A transport whose flush can leave its one frame to its loop's `SendBatch`.
protocol BatchSender: AnyObject {
    /// The outcome of a frame added to a batch: the bytes of `frame` the socket took, or nil when
    /// the send was handed to the kernel and its outcome is unknown (the connection must end).
    func sent(_ frame: ByteBuffer, written: Int?)
}

/// The sends of one `FlushBatcher` run, made together once every connection has added its own.
/// Used only on its batcher's event loop (hence unchecked); the ring is created there on first use,
/// so the loop's thread is the ring's only submitter.
final class SendBatch: @unchecked Sendable {
    /// Submission slots of a loop's ring: a larger batch goes in several system calls.
    static let ringEntries: UInt32 = 1024

    private struct Entry {
        let socket: CInt
        let frame: ByteBuffer
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
    private var sockets: [CInt] = []
    private var buffers: [UnsafeRawPointer?] = []
    private var lengths: [UInt32] = []
    private var results: [CInt] = []

    /// `useRing`: false sends each frame with its own `send` (the `fanout_io_uring` setting off).
    /// `entries`: the ring's submission slots.
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

    /// Adds `frame` for `socket`; `sender` hears how much of it went once the batch is sent.
    func add(_ frame: ByteBuffer, socket: CInt, sender: any BatchSender) {
        entries.append(Entry(socket: socket, frame: frame, sender: sender))
    }

    /// Makes every send added since the last call and tells each sender its outcome, in the order
    /// they were added.
    func send() {
        guard !entries.isEmpty else { return }
        defer { entries.removeAll(keepingCapacity: true) }
        // One send is cheaper as a plain system call than through the ring.
        if entries.count > 1, let pointer = readyRing() {
            sendThroughRing(pointer)
            return
        }
        for entry in entries {
            let written = entry.frame.withUnsafeReadableBytes { SocketWrite.send($0, to: entry.socket) }
            entry.sender.sent(entry.frame, written: written)
        }
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
        buffers.removeAll(keepingCapacity: true)
        lengths.removeAll(keepingCapacity: true)
        for entry in entries {
            sockets.append(entry.socket)
            // The frame stays in `entries` until the batch is sent, so its storage stays where it is.
            buffers.append(entry.frame.withUnsafeReadableBytes { UnsafeRawPointer($0.baseAddress) })
            lengths.append(UInt32(entry.frame.readableBytes))
        }
        results = [CInt](repeating: 0, count: entries.count)
        let status = sockets.withUnsafeBufferPointer { sockets in
            buffers.withUnsafeBufferPointer { buffers in
                lengths.withUnsafeBufferPointer { lengths in
                    results.withUnsafeMutableBufferPointer { results in
                        sb_send_ring_send(
                            pointer, sockets.baseAddress, buffers.baseAddress, lengths.baseAddress, results.baseAddress,
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
            case CInt(SB_SEND_NOT_ATTEMPTED):
                let written = entry.frame.withUnsafeReadableBytes { SocketWrite.send($0, to: entry.socket) }
                entry.sender.sent(entry.frame, written: written)
            case CInt(SB_SEND_UNKNOWN):
                entry.sender.sent(entry.frame, written: nil)
            default:
                // A failed send took nothing (-EAGAIN: the socket's buffer is full; another error
                // NIO meets on its own write and closes the channel on), as `SocketWrite.send` says.
                entry.sender.sent(entry.frame, written: result >= 0 ? Int(result) : 0)
            }
        }
    }
}
