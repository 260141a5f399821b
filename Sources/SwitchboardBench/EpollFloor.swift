/// `switchboard-bench gateway epoll-floor [--replies]`: what a new connection costs a Swift server
/// on an event loop of its own (edge-triggered epoll, no NIO), the floor a socket layer of the
/// gateway's own could reach before any protocol; with `--replies`, the floor of the client
/// protocol's exchange too (canned replies to `connect` and `subscribe`).
import CSocket
import Foundation
import Gateway

/// The same canned answers as `nio-floor` (a WebSocket `101` with its `Sec-WebSocket-Accept`, or
/// an event stream's head), served the way nginx serves a connection: accepted non-blocking,
/// added to epoll once (edge-triggered, the descriptor as its data), one read per readiness (a
/// short read drained the socket, so the next data raises a new edge), one write, and `close`
/// alone removes it from epoll. One thread, like one nginx worker. The load tool's nchan
/// subscribers (`idle --target nchan [--transport sse]`) count a connection ready on its answer.
///
/// With `--replies` every client frame after the upgrade is answered with a canned reply, the
/// first a `connect` result shaped like the gateway's, the others `subscribe` results, those of
/// one read in one write: the kernel's part of the exchange a new connection of the gateway's
/// client protocol has (the upgrade, then `connect` and `subscribe` in one write, as the load tool
/// sends them), with no protocol work at all. The load tool's gateway subscribers
/// (`idle --subscribe`) count a connection ready on its second reply.
enum EpollFloor {
    static func serve(_ options: Options) async throws {
        let port = options.int("port", 18720)
        let replies = options["replies"] == "true"
        let listener = try listen(port: port)
        let loop = sb_epoll_create()
        guard loop >= 0, sb_epoll_add(loop, listener, SB_EPOLLIN) == 0 else {
            throw GatewayLoadError.failed("epoll: errno \(errno)")
        }
        let thread = Thread { run(loop: loop, listener: listener, replies: replies) }
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
    private static func run(loop: Int32, listener: Int32, replies: Bool) {
        var answered = [Bool](repeating: false, count: 1 << 16)
        // Frames answered per connection (`--replies`).
        var framesAnswered = [UInt32](repeating: 0, count: 1 << 16)
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
                        if Int(accepted) >= answered.count {
                            answered += [Bool](repeating: false, count: answered.count)
                            framesAnswered += [UInt32](repeating: 0, count: framesAnswered.count)
                        }
                        answered[Int(accepted)] = false
                        framesAnswered[Int(accepted)] = 0
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
                    if !answered[Int(fd)] {
                        answered[Int(fd)] = answer(fd, input.withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[..<read]) })
                    } else if replies {
                        input.withUnsafeBytes { reply(fd, UnsafeRawBufferPointer(rebasing: $0[..<read]), answered: &framesAnswered[Int(fd)]) }
                    }
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

    /// One canned reply per whole client frame in `frames` (masked: two header bytes, an
    /// extended length when the 7-bit one is 126 or 127, four mask bytes, the payload), written
    /// together: the first to a connection a `connect` result, the others `subscribe` results.
    private static func reply(_ fd: Int32, _ frames: UnsafeRawBufferPointer, answered: inout UInt32) {
        var out: [UInt8] = []
        var at = 0
        while frames.count - at >= 6 {
            var length = Int(frames[at + 1] & 0x7F)
            var header = 2
            if length == 126 {
                length = Int(frames[at + 2]) << 8 | Int(frames[at + 3])
                header = 4
            } else if length == 127 {
                return  // not what the load tool sends
            }
            let end = at + header + 4 + length
            guard end <= frames.count else { break }
            answered += 1
            out += answered == 1 ? connectReply : subscribeReply(id: answered)
            at = end
        }
        if !out.isEmpty { _ = out.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } }
    }

    /// A text frame (unmasked, as a server sends) holding `text`, under 64 KB.
    private static func frame(_ text: String) -> [UInt8] {
        let payload = Array(text.utf8)
        let length: [UInt8] = payload.count < 126 ? [UInt8(payload.count)] : [126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        return [0x81] + length + payload
    }

    /// The gateway's connect result, its client and node IDs as long as its own.
    private static let connectReply = frame(
        #"{"id":1,"connect":{"client":"3f2504e0-4f89-41d3-9a0c-0305e82c3301","version":"switchboard-gateway 1.0","ping":25,"pong":true,"node":"9b2f1c3e-8a7d-4e6f-b5c4-1d2e3f4a5b6c"}}"#)

    private static func subscribeReply(id: UInt32) -> [UInt8] { frame(#"{"id":\#(id),"subscribe":{}}"#) }
}
