/// The client (after centrifuge's client.go): one connection's protocol state and its command loop, replies
/// and disconnects. Its commands live in the Client+*.swift extensions.
import Foundation
import Logging
import NIOCore
import SwitchboardCore
import Synchronization

/// One connection: decodes its commands and carries them out against the node (permissions,
/// limits, broker, presence), writes replies and pushes, and closes it. What may happen in which
/// state is decided by its `ConnectionState`, kept under `state`.
final class Client: Sendable {
    typealias Subscription = ConnectionState.Subscription
    typealias State = ConnectionState

    /// Publishes one connection may have in flight before its next command waits.
    static let maxPublishesInFlight = 64

    let id: String
    let node: Node
    let transport: any Transport
    let createdAt: Int64
    let state = Mutex(State())

    init(node: Node, transport: any Transport) {
        self.id = Self.makeID()
        self.node = node
        self.transport = transport
        self.createdAt = Clock.seconds()
        if !transport.answersPings { state.withLock { $0.answersPings = false } }
    }

    /// A random (version 4) UUID in lower case, written straight from its bytes. `UUID()` opens,
    /// reads and closes /dev/urandom each time; the bytes come from `RandomBytes` instead, so most
    /// new connections make no system call for their ID.
    static func makeID() -> String {
        var generator = RandomBytes()
        var bytes = (generator.next() as UInt64, generator.next() as UInt64)
        return withUnsafeMutableBytes(of: &bytes) { raw in
            raw[6] = raw[6] & 0x0F | 0x40  // version 4
            raw[8] = raw[8] & 0x3F | 0x80  // RFC 4122 variant
            return String(unsafeUninitializedCapacity: 36) { out in
                var at = 0
                for index in 0..<16 {
                    if index == 4 || index == 6 || index == 8 || index == 10 {
                        out[at] = UInt8(ascii: "-")
                        at += 1
                    }
                    out[at] = Self.lowerHex[Int(raw[index] >> 4)]
                    out[at + 1] = Self.lowerHex[Int(raw[index] & 0xF)]
                    at += 2
                }
                return at
            }
        }
    }

    private static let lowerHex = Array("0123456789abcdef".utf8)

    var user: String { state.withLock { $0.user } }
    var isClosed: Bool { state.withLock { $0.status == .closed } }
    var subscribedChannels: [String] { state.withLock { Array($0.subscriptions.keys) } }

    // MARK: inbound

    /// Takes a pong (`{}`, the most frequent message) without a trip through the command queue;
    /// false for anything else.
    func handlePong(_ bytes: ByteBuffer) -> Bool {
        // A unidirectional client's `{}` is its connect request (anonymous), and it sends no pongs.
        guard bytes.readableBytes == 2, !transport.unidirectional, bytes.getInteger(at: bytes.readerIndex, as: UInt16.self) == 0x7B7D else { return false }
        node.metrics.messagesIn.add(1, ordering: .relaxed)
        state.withLock { $0.pongDeadline = nil }
        return true
    }

    /// A WebSocket pong frame: the answer to the transport's ping, as good as `{}`.
    func pongReceived() {
        state.withLock { $0.pongDeadline = nil }
    }

    /// Handles one WebSocket message: one or more newline-separated commands. `recovering`: for a
    /// unidirectional client's connect request, positions to recover its channels from where the
    /// request names none (an `EventSource`'s `Last-Event-ID`).
    func handle(_ bytes: ByteBuffer, recovering positions: [String: EventStreamID.Position] = [:]) async {
        node.metrics.messagesIn.add(1, ordering: .relaxed)
        if transport.unidirectional {
            // What it sends after connecting is ignored, but not without limit.
            guard takeCommandAllowance() else {
                disconnect(.tooManyRequests)
                return
            }
            await handleConnectRequest(bytes, recovering: positions)
            return
        }
        state.withLock { $0.pongDeadline = nil }
        let view = bytes.readableBytesView
        var start = view.startIndex
        while start < view.endIndex, !isClosed {
            let end = view[start...].firstIndex(of: UInt8(ascii: "\n")) ?? view.endIndex
            let line = view[start..<end]
            start = end < view.endIndex ? view.index(after: end) : end
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }) { continue }
            guard takeCommandAllowance() else {
                node.logger.debug("client exceeded the command rate", metadata: ["client": "\(id)"])
                disconnect(.tooManyRequests)
                return
            }
            let command: Command
            do throws(MalformedCommand) {
                guard let json = JSONValue.parse(line) else { throw MalformedCommand() }
                command = try Command(json: json)
            } catch {
                node.logger.debug("undecodable command", metadata: ["client": "\(id)"])
                disconnect(.badRequest)
                return
            }
            await dispatch(command)
        }
    }

    /// One command's worth of the client's rate allowance; false when it is used up.
    private func takeCommandAllowance() -> Bool {
        let configuration = node.configuration
        guard configuration.clientCommandRate > 0 else { return true }
        let now = ContinuousClock.now
        return state.withLock {
            $0.commandAllowance.take(at: now, rate: configuration.clientCommandRate, burst: max(1, configuration.clientCommandBurst))
        }
    }

    private func dispatch(_ command: Command) async {
        let admission = state.withLock { $0.admit(command) }
        if case .skip = admission { return }  // closed, or a pong
        // Publishes overlap; any other command waits for their replies, so it sees their effects
        // (history, for one) and its reply comes after theirs.
        if command.publish == nil { await publishesBelow(1) }
        let id: UInt32
        switch admission {
        case .skip, .accept:
            return
        case .disconnect(let reason):
            disconnect(reason)
            return
        case .connect(let connectID, let request):
            await connect(id: connectID, request)
            return
        case .run(let runID):
            id = runID
        }
        do {
            if let request = command.subscribe {
                try await subscribe(id: id, request)
            } else if let request = command.unsubscribe {
                try await unsubscribe(id: id, channel: try require(request.channel))
            } else if let request = command.publish {
                try await publish(id: id, request)
            } else if let request = command.presence {
                try await presence(id: id, channel: try require(request.channel))
            } else if let request = command.presence_stats {
                try await presenceStats(id: id, channel: try require(request.channel))
            } else if let request = command.history {
                try await history(id: id, request)
            } else if let request = command.rpc {
                guard node.configuration.rpc else { throw GatewayError.methodNotFound }
                let data = request.data?.serialized
                reply(Reply.result(id: id, method: "rpc") { writer in
                    if let data { writer.rawField("data", data) }
                })
            } else if let request = command.refresh {
                try refresh(id: id, token: try require(request.token))
            } else if let request = command.sub_refresh {
                try subRefresh(id: id, channel: try require(request.channel), token: try require(request.token))
            } else if command.ping != nil {
                reply(Reply.result(id: id, method: "ping") { _ in })
            } else {
                throw GatewayError.methodNotFound
            }
        } catch let error as GatewayError {
            await publishesBelow(1)
            reply(Reply.error(id: id, error))
        } catch let disconnect as Disconnect {
            self.disconnect(disconnect)
        } catch {
            node.logger.error("command failed", metadata: ["client": "\(self.id)", "error": "\(error)"])
            await publishesBelow(1)
            reply(Reply.error(id: id, .internal))
        }
    }

    /// Waits until fewer than `limit` of this connection's publishes are in flight.
    func publishesBelow(_ limit: Int) async {
        guard state.withLock({ $0.publishesInFlight >= limit }) else { return }
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Bool in
                guard state.publishesInFlight >= limit else { return true }
                state.publishWaiter = (limit, continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// A publish's reply; replies come in the order the publishes were sent.
    func publishFinished(id: UInt32, _ result: Result<StreamPosition, GatewayError>) {
        switch result {
        case .success: reply(Reply.result(id: id, method: "publish") { _ in })
        case .failure(let error): reply(Reply.error(id: id, error))
        }
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.publishesInFlight -= 1
            guard let waiter = state.publishWaiter, state.publishesInFlight < waiter.limit else { return nil }
            state.publishWaiter = nil
            return waiter.continuation
        }
        waiter?.resume()
    }

    func require(_ value: String?) throws(GatewayError) -> String {
        guard let value, !value.isEmpty else { throw .badRequest }
        return value
    }

    // MARK: outbound

    /// Queues a message; a client whose queue is full is disconnected as slow.
    func reply(_ message: String) {
        node.metrics.messagesOut.add(1, ordering: .relaxed)
        if !transport.write(message) { slow() }
    }

    func slow() {
        node.metrics.slowDisconnects.add(1, ordering: .relaxed)
        disconnect(.slow)
    }

    /// Closes the connection with a code and cleans up (idempotent).
    func disconnect(_ disconnect: Disconnect) {
        guard let closed = markClosed() else { return }
        transport.close(disconnect)
        node.logger.debug("client disconnected", metadata: ["client": "\(id)", "code": "\(disconnect.code)"])
        Task { await node.cleanUp(self, user: closed.user, subscriptions: closed.subscriptions) }
    }

    /// The transport is gone (the peer closed the connection).
    func transportClosed() async {
        guard let closed = markClosed() else { return }
        await node.cleanUp(self, user: closed.user, subscriptions: closed.subscriptions)
    }

    /// `transportClosed` in a task of its own, from a channel handler that saw its channel go
    /// inactive; `then` runs once the client is cleaned up (the transport lets go of it).
    func transportClosedInBackground(then: @escaping @Sendable () -> Void) {
        Task {
            await transportClosed()
            then()
        }
    }

    private func markClosed() -> (user: String, subscriptions: [String: Subscription], wasConnected: Bool)? {
        state.withLock { $0.close() }
    }
}
