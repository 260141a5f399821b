/// `switchboard-bench gateway epoll-floor`: what a new connection costs a Swift server on an
/// event loop of its own (edge-triggered epoll, no NIO), the floor a socket layer of the gateway's
/// own could reach before any protocol.
import CSocket
import Foundation
import Gateway

/// The same canned answers as `nio-floor` (a WebSocket `101` with its `Sec-WebSocket-Accept`, or
/// an event stream's head), served the way nginx serves a connection: accepted non-blocking,
/// added to epoll once (edge-triggered, the descriptor as its data), one read per readiness (a
/// short read drained the socket, so the next data raises a new edge), one write, and `close`
/// alone removes it from epoll. One thread, like one nginx worker. The load tool's nchan
/// subscribers (`idle --target nchan [--transport sse]`) count a connection ready on its answer.
enum EpollFloor {
    static func serve(_ options: Options) async throws {
        let port = options.int("port", 18720)
        let listener = try listen(port: port)
        let loop = sb_epoll_create()
        guard loop >= 0, sb_epoll_add(loop, listener, SB_EPOLLIN) == 0 else {
            throw GatewayLoadError.failed("epoll: errno \(errno)")
        }
        let thread = Thread { run(loop: loop, listener: listener) }
        thread.start()
        print("epoll-floor on port \(port)")
        await NIOFloor.waitForSignal()
    }

    private static func listen(port: Int) throws -> Int32 {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw GatewayLoadError.failed("socket: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = fcntl(listener, F_SETFL, fcntl(listener, F_GETFL) | O_NONBLOCK)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(listener, 4096) == 0 else { throw GatewayLoadError.failed("bind/listen: errno \(errno)") }
        return listener
    }

    /// The event loop; never returns (the process ends on SIGTERM).
    private static func run(loop: Int32, listener: Int32) {
        var answered = [Bool](repeating: false, count: 1 << 16)
        var input = [UInt8](repeating: 0, count: 4096)
        var fds = [Int32](repeating: 0, count: 512)
        var events = [UInt32](repeating: 0, count: 512)
        let edge = SB_EPOLLIN | SB_EPOLLRDHUP | SB_EPOLLET
        while true {
            let count = sb_epoll_wait(loop, &fds, &events, 512, -1)
            if count < 0 { continue }  // EINTR
            for index in 0..<Int(count) {
                let fd = fds[index]
                if fd == listener {
                    while true {
                        let accepted = sb_accept_nonblocking(listener)
                        if accepted < 0 { break }
                        if Int(accepted) >= answered.count { answered += [Bool](repeating: false, count: answered.count) }
                        answered[Int(accepted)] = false
                        if sb_epoll_add(loop, accepted, edge) != 0 { close(accepted) }
                    }
                    continue
                }
                var open = true
                while true {
                    let read = input.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                    if read == 0 || (read < 0 && errno != EAGAIN && errno != EINTR) {
                        open = false
                        break
                    }
                    if read < 0 { break }
                    if !answered[Int(fd)] { answered[Int(fd)] = answer(fd, input.withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[..<read]) }) }
                    if read < input.count { break }  // drained: the next data raises a new edge
                }
                if !open || events[index] & (SB_EPOLLHUP | SB_EPOLLERR) != 0 { close(fd) }
            }
        }
    }

    /// Answers a whole request head (one read holds it, as the load tool sends it); true once answered.
    private static func answer(_ fd: Int32, _ head: UnsafeRawBufferPointer) -> Bool {
        guard head.firstRange(of: [13, 10, 13, 10]) != nil else { return false }
        let answer = NIOFloor.webSocketKey(in: head).map(WebSocketHandshake.response(key:)) ?? NIOFloor.eventStreamHead
        _ = answer.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        return true
    }
}
