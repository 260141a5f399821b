/// Writing to a connection's socket directly, below NIO: the system calls both stream transports
/// (`WebSocketTransport`, `HTTPStreamTransport`) make while NIO holds nothing for the socket, and
/// the bookkeeping that says when they may.
import Glibc
import NIOCore
import Synchronization

/// `send(2)` and `sendmsg(2)` of bytes that are already in memory, as much as the socket takes
/// now. Each returns the bytes written, 0 when none (its buffer is full, or an error that NIO
/// will meet and close the channel on).
enum SocketWrite {
    static func send(_ bytes: UnsafeRawBufferPointer, to socket: CInt) -> Int {
        while true {
            let written = Glibc.send(socket, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
            if written >= 0 { return written }
            if errno != EINTR { return 0 }
        }
    }

    /// `head` then `body`, in one system call.
    static func send(_ head: UnsafeRawBufferPointer, _ body: UnsafeRawBufferPointer, to socket: CInt) -> Int {
        var parts = (iovec(head), iovec(body))
        return withUnsafeMutableBytes(of: &parts) { sendmsg($0, count: 2, to: socket) }
    }

    /// `head`, `body` and `tail`, in one system call.
    static func send(
        _ head: UnsafeRawBufferPointer, _ body: UnsafeRawBufferPointer, _ tail: UnsafeRawBufferPointer, to socket: CInt
    ) -> Int {
        var parts = (iovec(head), iovec(body), iovec(tail))
        return withUnsafeMutableBytes(of: &parts) { sendmsg($0, count: 3, to: socket) }
    }

    private static func sendmsg(_ parts: UnsafeMutableRawBufferPointer, count: Int, to socket: CInt) -> Int {
        var message = msghdr()
        message.msg_iov = parts.baseAddress!.assumingMemoryBound(to: iovec.self)
        message.msg_iovlen = count
        while true {
            let written = Glibc.sendmsg(socket, &message, Int32(MSG_NOSIGNAL))
            if written >= 0 { return written }
            if errno != EINTR { return 0 }
        }
    }
}

extension iovec {
    fileprivate init(_ bytes: UnsafeRawBufferPointer) {
        self.init(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
    }
}

/// What a transport that writes to its socket directly keeps under its lock, beside its queue:
/// whether it may write now.
struct DirectWriteState {
    /// Writes handed to NIO and not yet completed; direct writes wait until there are none.
    var handedToNIO = 0
    /// The channel is active: its socket is open (set and cleared by the connection's handler).
    var open = false
    /// The channel's writability as its last change left it: false while more than the high water
    /// mark waits in NIO for a peer that does not read. Kept here so a flush does not touch the
    /// channel object.
    var writable = true

    /// Whether bytes may go to the socket directly now.
    var direct: Bool { open && handedToNIO == 0 }
}

/// A transport that writes to its connection's socket directly while NIO holds nothing for it
/// (`WebSocketTransport`, `HTTPStreamTransport`). Direct writes happen only on the channel's event
/// loop and only while the socket is open: NIO closes the descriptor on that loop and tells the
/// connection's handler in the same call, so a descriptor number the kernel has handed out again
/// is never written to. What the socket does not take is handed to NIO, and later bytes follow it
/// there until NIO has written them all, so nothing overtakes.
protocol DirectSocketWriter: AnyObject, Sendable {
    /// The connection's socket (owned by the channel); nil when it is not known, and every write
    /// goes through NIO.
    var socket: CInt? { get }
    var metrics: Metrics? { get }
    /// Runs `body` on the transport's `DirectWriteState`, under its lock.
    func withDirectWriteState<Result>(_ body: (inout DirectWriteState) -> Result) -> Result
}

extension DirectSocketWriter {
    /// The connection's handler is in the pipeline; `active`: its channel is. On the event loop.
    func channelOpened(active: Bool) {
        withDirectWriteState { $0.open = active }
    }

    /// The channel went inactive (its socket is closed); on the event loop.
    func channelClosed() {
        withDirectWriteState { $0.open = false }
    }

    /// The channel's writability changed; on the event loop.
    func writabilityChanged(_ writable: Bool) {
        withDirectWriteState { $0.writable = writable }
    }

    /// What of `bytes` is left for NIO: nil when `direct` and `send(2)` to the socket took all of
    /// it; otherwise what remains (its buffer is full, or the peer is gone and NIO will meet the
    /// error and close the channel), or all of it when it cannot be sent directly.
    func unsent(_ bytes: ByteBuffer, direct: Bool) -> ByteBuffer? {
        guard direct, let socket else { return bytes }
        let written = bytes.withUnsafeReadableBytes { SocketWrite.send($0, to: socket) }
        return written == bytes.readableBytes ? nil : rest(of: bytes, written: written)
    }

    /// What NIO gets of `bytes` after the socket took `written` of them (a write it took only
    /// part of, counted).
    func rest(of bytes: ByteBuffer, written: Int) -> ByteBuffer {
        metrics?.socketBacklogs.add(1, ordering: .relaxed)
        var rest = bytes
        rest.moveReaderIndex(forwardBy: written)
        return rest
    }

    /// Counts a write handed to NIO until `written` completes (NIO completes writes in order:
    /// once the last one is done, it holds nothing of ours). Without a socket nothing is written
    /// directly, so nothing is counted.
    func holdDirectWrites(until written: EventLoopFuture<Void>) {
        guard socket != nil else { return }
        withDirectWriteState { $0.handedToNIO += 1 }
        written.whenComplete { _ in self.withDirectWriteState { $0.handedToNIO -= 1 } }
    }
}
