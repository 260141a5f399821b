/// One accepted socket on a `SocketLoop`: its edge-triggered reads, its queue of bytes the socket
/// has not taken yet (written when `epoll` says it drained), and its close.
import CSocket
import Glibc
import NIOCore

/// What reads a `SocketConnection`'s bytes. Every call is on the connection's loop.
protocol SocketConnectionHandler: AnyObject {
    /// Bytes the peer sent, in order.
    func received(_ bytes: ByteBuffer, on connection: SocketConnection)
    /// The queue of unwritten bytes crossed a water mark: false above the high one (the peer does
    /// not read), true again below the low one.
    func writabilityChanged(_ writable: Bool)
    /// The socket is closed, by either side; nothing is read or written any more.
    func closed()
}

/// One connection of a `SocketLoop`, touched only on that loop (hence unchecked).
///
/// Reads: `epoll` reports the socket readable once per edge, so the connection reads until the
/// socket is drained (a read shorter than asked for, as nginx takes it, or `EAGAIN`), or until
/// its handler pauses it; `resumeReading` carries on where it stopped. Writes: bytes go to the
/// socket at once while nothing waits before them; what it does not take waits in `pending` and
/// goes out when `epoll` reports the socket writable again (the socket is registered for both
/// from the start, so that costs no system call). A write's promise completes once its last byte
/// is with the kernel.
final class SocketConnection: @unchecked Sendable {
    let socket: CInt
    let loop: SocketLoop
    var handler: (any SocketConnectionHandler)?
    private(set) var isOpen = true
    /// Bytes may be waiting to be read (an edge was reported and the socket not drained since).
    private var readable = false
    private var peerClosed = false
    private var readingPaused = false
    private var pending = CircularBuffer<ByteBuffer>()
    private var pendingBytes = 0
    /// Bytes ever queued and written, counting those that went to the socket at once.
    private var queuedTotal = 0
    private var writtenTotal = 0
    private var completions = CircularBuffer<(through: Int, promise: EventLoopPromise<Void>)>()
    private var writable = true
    private var waterMarks = (low: 32768, high: 65536)

    init(socket: CInt, loop: SocketLoop) {
        self.socket = socket
        self.loop = loop
    }

    /// Above `high` unwritten bytes the connection reports itself not writable, below `low`
    /// writable again.
    func setWaterMarks(low: Int, high: Int) {
        waterMarks = (low, max(high, low))
    }

    /// What `epoll` reported for the socket.
    func handle(events: UInt32) {
        if events & SB_EPOLLERR != 0 {
            close()
            return
        }
        if events & (SB_EPOLLIN | SB_EPOLLRDHUP | SB_EPOLLHUP) != 0 {
            readable = true
            if events & (SB_EPOLLRDHUP | SB_EPOLLHUP) != 0 { peerClosed = true }
            readAvailable()
        }
        if isOpen, events & SB_EPOLLOUT != 0, !pending.isEmpty { writePending() }
    }

    // MARK: reading

    /// Stops reading until `resumeReading` (the handler's backlog is full).
    func pauseReading() {
        readingPaused = true
    }

    func resumeReading() {
        guard readingPaused else { return }
        readingPaused = false
        readAvailable()
    }

    private func readAvailable() {
        let scratch = loop.scratch
        while readable, isOpen, !readingPaused {
            let count = Glibc.read(socket, scratch.baseAddress, scratch.count)
            if count > 0 {
                // A short read drained the socket; after the peer's FIN, read on to meet it.
                if count < scratch.count, !peerClosed { readable = false }
                let bytes = loop.allocator.buffer(bytes: UnsafeRawBufferPointer(rebasing: scratch[..<count]))
                handler?.received(bytes, on: self)
            } else if count == 0 {
                close()
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                readable = false
            } else if errno != EINTR {
                close()
            }
        }
    }

    // MARK: writing

    /// Whether bytes wait in the queue for the socket to drain.
    var hasPendingWrites: Bool { !pending.isEmpty }

    /// Writes `buffers` after whatever waits; `promise` (if any) succeeds once all of them are with
    /// the kernel, fails if the connection closes first.
    func write<Buffers: Collection>(_ buffers: Buffers, promise: EventLoopPromise<Void>?) where Buffers.Element == ByteBuffer {
        guard isOpen else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        let wasEmpty = pending.isEmpty
        for buffer in buffers where buffer.readableBytes > 0 {
            pending.append(buffer)
            pendingBytes += buffer.readableBytes
            queuedTotal += buffer.readableBytes
        }
        if let promise { completions.append((queuedTotal, promise)) }
        if wasEmpty { writePending() } else { checkWaterMarks() }
    }

    /// Writes what waits, as much as the socket takes.
    private func writePending() {
        while !pending.isEmpty, isOpen {
            let (written, attempted) = writev()
            if written < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                close()
                return
            }
            consume(written)
            // A short write filled the socket: `epoll` says when it has drained.
            if written < attempted { break }
        }
        completeWrites()
        checkWaterMarks()
    }

    private static let iovecLimit = 64

    /// One `writev` of the first `iovecLimit` buffers waiting: what it wrote (-1 with `errno`)
    /// and how much it was given.
    private func writev() -> (written: Int, attempted: Int) {
        withUnsafeTemporaryAllocation(of: iovec.self, capacity: Self.iovecLimit) { parts in
            var count = 0
            var attempted = 0
            var index = pending.startIndex
            // The buffers stay alive in `pending` while the call runs.
            while count < Self.iovecLimit, index != pending.endIndex {
                pending[index].withUnsafeReadableBytes { bytes in
                    parts[count] = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
                    attempted += bytes.count
                }
                count += 1
                index = pending.index(after: index)
            }
            return (Glibc.writev(socket, parts.baseAddress, CInt(count)), attempted)
        }
    }

    private func consume(_ written: Int) {
        var left = written
        pendingBytes -= written
        writtenTotal += written
        while left > 0 {
            let size = pending[pending.startIndex].readableBytes
            if size <= left {
                left -= size
                pending.removeFirst()
            } else {
                pending[pending.startIndex].moveReaderIndex(forwardBy: left)
                left = 0
            }
        }
    }

    private func completeWrites() {
        while let first = completions.first, first.through <= writtenTotal {
            completions.removeFirst().promise.succeed(())
        }
    }

    private func checkWaterMarks() {
        if writable, pendingBytes > waterMarks.high {
            writable = false
            handler?.writabilityChanged(false)
        } else if !writable, pendingBytes < waterMarks.low {
            writable = true
            handler?.writabilityChanged(true)
        }
    }

    // MARK: closing and handing on

    /// Closes the socket (what waits to be written is dropped, its promises failed) and tells the
    /// handler. On the loop; a second call does nothing.
    func close() {
        guard isOpen else { return }
        isOpen = false
        loop.forget(self, deregister: false)
        Glibc.close(socket)
        dropPending()
        let handler = self.handler
        self.handler = nil
        handler?.closed()
    }

    /// Lets go of the socket without closing it (removed from the loop's `epoll`), for another
    /// owner: NIO, for a request this layer does not serve itself. Nothing may wait to be written.
    func handOff() -> CInt {
        precondition(isOpen && pending.isEmpty)
        isOpen = false
        loop.forget(self, deregister: true)
        handler = nil
        return socket
    }

    private func dropPending() {
        pending.removeAll()
        pendingBytes = 0
        while let first = completions.popFirst() { first.promise.fail(ChannelError.ioOnClosedChannel) }
    }
}
