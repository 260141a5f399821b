import Foundation
import Logging
import NIOCore
import Synchronization
import Testing

@testable import Gateway

/// The gateway's own event loop as NIO's `EventLoop` (tasks, timers, stopping) and its
/// connections on loopback sockets: reads, writes the socket does not take at once, pausing,
/// closing and handing a socket on.
@Suite struct SocketLoopTests {
    @Test func tasksFromOtherThreadsRunOnTheLoopInTheOrderEachThreadSubmittedThem() async throws {
        let loop = try SocketLoop(name: "test", logger: .init(label: "test"))
        let seen = Locked<[[Int]]>([[], []])
        let offLoop = Locked(0)
        await withTaskGroup(of: Void.self) { group in
            for producer in 0..<2 {
                group.addTask {
                    for n in 0..<2000 {
                        loop.execute {
                            if !loop.inEventLoop { offLoop.withLock { $0 += 1 } }
                            seen.withLock { $0[producer].append(n) }
                        }
                    }
                }
            }
        }
        try await loop.submit {}.get()
        #expect(seen.withLock { $0 } == [Array(0..<2000), Array(0..<2000)])
        #expect(offLoop.withLock { $0 } == 0)
        #expect(!loop.inEventLoop)
        try await loop.stop().get()
    }

    @Test func scheduledTasksRunByDeadlineAndACancelledOneFails() async throws {
        let loop = try SocketLoop(name: "test", logger: .init(label: "test"))
        let order = Locked<[Int]>([])
        let late = loop.scheduleTask(in: .milliseconds(90)) { order.withLock { $0.append(90) } }
        let early = loop.scheduleTask(in: .milliseconds(20)) { order.withLock { $0.append(20) } }
        let cancelled = loop.scheduleTask(in: .milliseconds(50)) { order.withLock { $0.append(50) } }
        cancelled.cancel()
        try await early.futureResult.get()
        try await late.futureResult.get()
        await #expect(throws: EventLoopError.cancelled) { try await cancelled.futureResult.get() }
        #expect(order.withLock { $0 } == [20, 90])
        // A task scheduled on the loop itself, for a deadline already past, runs too.
        let now = try await loop.submit { loop.scheduleTask(deadline: .now() - .seconds(1)) { 7 } }.get()
        #expect(try await now.futureResult.get() == 7)
        try await loop.stop().get()
    }

    @Test func stoppingFailsTheTimersStillWaitingAndClosesTheConnections() async throws {
        let loop = try SocketLoop(name: "test", logger: .init(label: "test"))
        let pair = try LoopPair(loop)
        let waiting = loop.scheduleTask(in: .seconds(60)) {}
        try await loop.stop().get()
        await #expect(throws: EventLoopError.shutdown) { try await waiting.futureResult.get() }
        #expect(pair.handler.closedCount.withLock { $0 } == 1)
        #expect(pair.peerSeesEnd())
    }

    @Test func aConnectionReadsWhatThePeerSendsInOrder() async throws {
        let loop = try SocketLoop(name: "test", logger: .init(label: "test"))
        let pair = try LoopPair(loop)
        let sent = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        pair.peerSend(sent)
        try await pair.handler.waitFor(bytes: sent.count)
        #expect(pair.handler.received.withLock { $0 } == sent)
        try await loop.stop().get()
    }

    /// What the socket does not take waits, in order, and its promise completes once it is all
    /// written; the water marks report a peer that stops reading and one that catches up.
    @Test func writesTheSocketDoesNotTakeWaitAndGoOutInOrder() async throws {
        let loop = try SocketLoop(name: "test", logger: .init(label: "test"))
        let pair = try LoopPair(loop, peerReceiveBuffer: 4096)
        let chunks = (0..<64).map { index in ByteBuffer(bytes: [UInt8](repeating: UInt8(index), count: 32768)) }
        let written = try await loop.submit {
            pair.connection.setWaterMarks(low: 65536, high: 262_144)
            var size: CInt = 16384
            setsockopt(pair.connection.socket, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<CInt>.size))
            let promise = loop.makePromise(of: Void.self)
            pair.connection.write(chunks, promise: promise)
            return (promise.futureResult, pair.connection.hasPendingWrites)
        }.get()
        #expect(written.1, "the socket did not take 2 MB at once")
        #expect(pair.handler.writability.withLock { $0 } == [false])
        let received = pair.peerReadAll(count: 64 * 32768)
        try await written.0.get()
        #expect(received == chunks.flatMap { Array($0.readableBytesView) })
        #expect(pair.handler.writability.withLock { $0 } == [false, true])
        try await loop.stop().get()
    }

    @Test func aPausedConnectionReadsNothingUntilResumed() async throws {
        let loop = try SocketLoop(name: "test", logger: .init(label: "test"))
        let pair = try LoopPair(loop)
        pair.handler.pauseAfterRead.withLock { $0 = true }
        pair.peerSend(Array("first".utf8))
        try await pair.handler.waitFor(bytes: 5)
        pair.peerSend(Array("second".utf8))
        try await Task.sleep(for: .milliseconds(200))
        #expect(pair.handler.received.withLock { $0.count } == 5)
        pair.handler.pauseAfterRead.withLock { $0 = false }
        try await loop.submit { pair.connection.resumeReading() }.get()
        try await pair.handler.waitFor(bytes: 11)
        #expect(String(decoding: pair.handler.received.withLock { $0 }, as: UTF8.self) == "firstsecond")
        try await loop.stop().get()
    }

    @Test func aPeerThatGoesAwayClosesTheConnectionAndFailsWritesStillWaiting() async throws {
        let loop = try SocketLoop(name: "test", logger: .init(label: "test"))
        let pair = try LoopPair(loop, peerReceiveBuffer: 4096)
        let written = try await loop.submit {
            let promise = loop.makePromise(of: Void.self)
            pair.connection.write(CollectionOfOne(ByteBuffer(repeating: 1, count: 4 << 20)), promise: promise)
            return promise.futureResult
        }.get()
        pair.closePeer()
        await #expect(throws: ChannelError.ioOnClosedChannel) { try await written.get() }
        try await pair.handler.waitForClose()
        #expect(try await loop.submit { pair.connection.isOpen }.get() == false)
        try await loop.stop().get()
    }

    @Test func aSocketHandedOnStaysOpenAndTheLoopNoLongerReadsIt() async throws {
        let loop = try SocketLoop(name: "test", logger: .init(label: "test"))
        let pair = try LoopPair(loop)
        let socket = try await loop.submit { pair.connection.handOff() }.get()
        pair.peerSend(Array("after".utf8))
        try await Task.sleep(for: .milliseconds(100))
        #expect(pair.handler.received.withLock { $0.isEmpty })
        var bytes = [UInt8](repeating: 0, count: 16)
        #expect(read(socket, &bytes, 16) == 5)
        #expect(pair.handler.closedCount.withLock { $0 } == 0)
        close(socket)
        try await loop.stop().get()
    }
}

/// A loopback connection accepted by a `SocketLoop` (the `connection`, its `handler` recording
/// what happens) and the blocking client socket at its other end.
extension SocketLoopTests {
    /// Replies are small frames written as they are ready: a connection from the gateway's
    /// listening socket has Nagle's delay off (from the listening socket; no call per connection).
    @Test func aConnectionAcceptedFromTheGatewaysSocketHasNaglesDelayOff() async throws {
        let loop = try SocketLoop(name: "test", logger: .init(label: "test"))
        let acceptor = try Acceptor(host: "127.0.0.1", port: 0, backlog: 8, eventLoop: loop)
        let accepted = Locked<CInt?>(nil)
        acceptor.start(on: [loop]) { connection in accepted.withLock { $0 = connection.socket } }
        let peer = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(peer) }
        let connected = acceptor.localAddress.withSockAddr { address, size in connect(peer, address, socklen_t(size)) }
        #expect(connected == 0)
        let deadline = ContinuousClock.now + .seconds(10)
        while accepted.withLock({ $0 }) == nil && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        let socket = try #require(accepted.withLock { $0 })
        var noDelay: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        #expect(getsockopt(socket, CInt(IPPROTO_TCP), TCP_NODELAY, &noDelay, &length) == 0)
        #expect(noDelay != 0)
        acceptor.close()
        try await acceptor.closeFuture.get()
        await acceptor.stopLoops()
    }
}

private struct LoopPair {
    let connection: SocketConnection
    let handler: RecordingHandler
    let peer: CInt

    init(_ loop: SocketLoop, peerReceiveBuffer: CInt? = nil) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        Glibc.listen(listener, 8)
        _ = fcntl(listener, F_SETFL, fcntl(listener, F_GETFL) | O_NONBLOCK)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        let handler = RecordingHandler()
        let accepted = Locked<SocketConnection?>(nil)
        let ready = DispatchSemaphore(value: 0)
        loop.execute {
            loop.listen(on: listener) { connection in
                connection.handler = handler
                accepted.withLock { $0 = connection }
                ready.signal()
            }
        }
        let peer = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.peer = peer
        if var size = peerReceiveBuffer { setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<CInt>.size)) }
        let connected = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(peer, $0, length) } }
        guard connected == 0, ready.wait(timeout: .now() + 10) == .success else { throw IOError(errnoCode: errno, reason: "connect") }
        let done = DispatchSemaphore(value: 0)
        loop.execute {
            loop.stopListening(on: listener)
            done.signal()
        }
        done.wait()
        close(listener)
        connection = accepted.withLock { $0 }!
        self.handler = handler
    }

    func peerSend(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { send(peer, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { return }
            offset += sent
        }
    }

    func peerReadAll(count: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while bytes.count < count {
            let got = read(peer, &chunk, chunk.count)
            guard got > 0 else { break }
            bytes += chunk[..<got]
        }
        return bytes
    }

    /// Whether the peer reads the end of the stream (the server closed its socket).
    func peerSeesEnd() -> Bool {
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var byte: UInt8 = 0
        return read(peer, &byte, 1) == 0
    }

    func closePeer() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(peer, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close(peer)
    }
}

private final class RecordingHandler: SocketConnectionHandler, Sendable {
    let received = Locked<[UInt8]>([])
    let writability = Locked<[Bool]>([])
    let closedCount = Locked(0)
    let pauseAfterRead = Locked(false)

    func received(_ bytes: ByteBuffer, on connection: SocketConnection) {
        received.withLock { $0 += bytes.readableBytesView }
        if pauseAfterRead.withLock({ $0 }) { connection.pauseReading() }
    }

    func writabilityChanged(_ writable: Bool) {
        writability.withLock { $0.append(writable) }
    }

    func closed() {
        closedCount.withLock { $0 += 1 }
    }

    func waitFor(bytes count: Int) async throws {
        for _ in 0..<500 where received.withLock({ $0.count }) < count {
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    func waitForClose() async throws {
        for _ in 0..<500 where closedCount.withLock({ $0 }) == 0 {
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}
