/// Writing to a connection's socket directly, below NIO: the system calls both stream transports
/// (`WebSocketTransport`, `HTTPStreamTransport`) make while NIO holds nothing for the socket.
import Glibc

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
