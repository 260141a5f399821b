/// The public port's accept loop: a listening socket the gateway owns, and a thread that accepts
/// connections and hands each one to an event loop.
import CSocket
import Foundation
import Logging
import NIOCore
import Synchronization

/// Accepts connections on a listening socket of its own and hands each socket on (the listener
/// makes it a NIO channel with `ClientBootstrap.withConnectedSocket`, whose initializer is told
/// the descriptor), or has the gateway's own event loops accept on it (`start(on:accept:)`). NIO's server bootstrap accepts on an event loop too, but keeps the descriptor to
/// itself; knowing it lets `WebSocketTransport` write a publication with one `send` instead of
/// going through NIO's write path (docs/gateway.md, "Writes").
///
/// The thread waits in `poll` on the listening socket and on a pipe that `close()` writes to, and
/// accepts whatever is queued each time it wakes. When the process runs out of descriptors the
/// connections stay in the kernel's queue and the thread retries every 10 ms.
package final class Acceptor: Sendable {
    /// Where the socket is bound (the port the kernel picked when asked for port 0).
    package let localAddress: SocketAddress
    private let listenSocket: CInt
    private let wakePipe: (read: CInt, write: CInt)
    private let closing = Atomic<Bool>(false)
    private let finished: EventLoopPromise<Void>
    /// The gateway's own event loops accepting on the socket (`start(on:accept:)`); empty while a
    /// thread of the acceptor's accepts.
    private let loops = Mutex<[SocketLoop]>([])

    /// Succeeds once the accept thread has stopped and the listening socket is closed.
    package var closeFuture: EventLoopFuture<Void> { finished.futureResult }

    /// Binds and listens; accepting starts with `start`.
    package init(host: String, port: Int, backlog: Int32, eventLoop: any EventLoop) throws {
        let address = try SocketAddress.makeAddressResolvingHost(host, port: port)
        let family = address.protocol.rawValue
        let socket = Glibc.socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socket >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        var pipeFDs: [CInt] = [-1, -1]
        do {
            var on: CInt = 1
            guard setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<CInt>.size)) == 0 else {
                throw IOError(errnoCode: errno, reason: "setsockopt(SO_REUSEADDR)")
            }
            // Linux gives accepted sockets the listening socket's TCP_NODELAY: no call per connection.
            guard setsockopt(socket, CInt(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<CInt>.size)) == 0 else {
                throw IOError(errnoCode: errno, reason: "setsockopt(TCP_NODELAY)")
            }
            let bound = address.withSockAddr { pointer, size in Glibc.bind(socket, pointer, socklen_t(size)) }
            guard bound == 0 else { throw IOError(errnoCode: errno, reason: "bind(\(host):\(port))") }
            guard Glibc.listen(socket, backlog) == 0 else { throw IOError(errnoCode: errno, reason: "listen") }
            guard fcntl(socket, F_SETFL, fcntl(socket, F_GETFL) | O_NONBLOCK) == 0 else {
                throw IOError(errnoCode: errno, reason: "fcntl(O_NONBLOCK)")
            }
            guard sb_pipe_nonblocking(&pipeFDs) == 0 else { throw IOError(errnoCode: errno, reason: "pipe2") }
            localAddress = try Self.boundAddress(of: socket, host: host)
        } catch {
            Glibc.close(socket)
            if pipeFDs[0] >= 0 { Glibc.close(pipeFDs[0]) }
            if pipeFDs[1] >= 0 { Glibc.close(pipeFDs[1]) }
            throw error
        }
        listenSocket = socket
        wakePipe = (pipeFDs[0], pipeFDs[1])
        finished = eventLoop.makePromise()
    }

    /// Starts the accept thread. `handOff` gets each accepted socket (non-blocking, close-on-exec)
    /// and owns it from then on; it must not block.
    package func start(logger: Logger, handOff: @escaping @Sendable (CInt) -> Void) {
        let thread = Thread { [self] in
            acceptLoop(logger: logger, handOff: handOff)
        }
        thread.name = "gateway-accept"
        thread.start()
    }

    /// Has each of `loops` accept on the socket itself, instead of a thread of the acceptor's;
    /// `accept` gets each connection on its loop. The loops are the acceptor's to stop
    /// (`stopLoops`).
    func start(on loops: [SocketLoop], accept: @escaping @Sendable (SocketConnection) -> Void) {
        self.loops.withLock { $0 = loops }
        let socket = listenSocket
        for loop in loops {
            loop.execute { loop.listen(on: socket, accept: accept) }
        }
    }

    /// Stops accepting and closes the listening socket (connections already handed off stay open).
    package func close() {
        guard !closing.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let loops = self.loops.withLock { $0 }
        guard !loops.isEmpty else {
            var byte: UInt8 = 1
            _ = Glibc.write(wakePipe.write, &byte, 1)
            return
        }
        // Every loop lets go of the socket before it is closed.
        let socket = listenSocket
        let released = loops.map { loop in loop.submit { loop.stopListening(on: socket) } }
        EventLoopFuture.andAllComplete(released, on: finished.futureResult.eventLoop).whenComplete { [self] _ in
            Glibc.close(listenSocket)
            Glibc.close(wakePipe.read)
            Glibc.close(wakePipe.write)
            finished.succeed(())
        }
    }

    /// Stops the event loops `start(on:accept:)` gave the socket, closing their connections.
    func stopLoops() async {
        let loops = self.loops.withLock { $0 }
        for loop in loops { try? await loop.stop().get() }
    }

    private func acceptLoop(logger: Logger, handOff: @Sendable (CInt) -> Void) {
        defer {
            Glibc.close(listenSocket)
            Glibc.close(wakePipe.read)
            Glibc.close(wakePipe.write)
            finished.succeed(())
        }
        var fds = [
            pollfd(fd: listenSocket, events: Int16(POLLIN), revents: 0),
            pollfd(fd: wakePipe.read, events: Int16(POLLIN), revents: 0),
        ]
        var lastResourceWarning = ContinuousClock.now - .seconds(60)
        while !closing.load(ordering: .acquiring) {
            let ready = poll(&fds, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                logger.error("gateway accept loop stopped", metadata: ["errno": "\(errno)"])
                return
            }
            if fds[1].revents != 0 { return }
            acceptQueued: while true {
                let socket = sb_accept_nonblocking(listenSocket)
                if socket >= 0 {
                    handOff(socket)
                    continue
                }
                switch errno {
                case EAGAIN, EWOULDBLOCK:
                    break acceptQueued
                case EINTR, ECONNABORTED, EPROTO:
                    continue
                default:
                    // Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM): the connection
                    // waits in the kernel's queue; try again shortly rather than spin.
                    let error = errno
                    if ContinuousClock.now - lastResourceWarning > .seconds(10) {
                        lastResourceWarning = .now
                        logger.warning("gateway cannot accept connections", metadata: ["errno": "\(error)"])
                    }
                    usleep(10_000)
                    break acceptQueued
                }
            }
        }
    }

    private static func boundAddress(of socket: CInt, host: String) throws -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
        }
        guard result == 0 else { throw IOError(errnoCode: errno, reason: "getsockname") }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafeBytes(of: &storage) { SocketAddress($0.load(as: sockaddr_in.self), host: host) }
        case AF_INET6:
            return withUnsafeBytes(of: &storage) { SocketAddress($0.load(as: sockaddr_in6.self), host: host) }
        default:
            throw IOError(errnoCode: EAFNOSUPPORT, reason: "getsockname")
        }
    }
}
