/// What the gateway's tests share: a transport that records what a client writes, a node on the
/// memory engine with a `chat` namespace (presence, history, recovery, publish and read access for
/// subscribers) and a `locked` one (nothing allowed; the Redis engine tests take this
/// configuration), and sending raw text as one WebSocket message. GatewayTests compiles this same
/// file through a symbolic link (test targets share no sources, and a shared module could not
/// import Gateway `@testable` outside a test target).
import Foundation
import Logging
import NIOCore
import SwitchboardCore
import Synchronization

@testable import Gateway

/// Records what the client writes and how it was closed (and, for a unidirectional transport,
/// its pings), on whatever event loop a fan-out runs on.
final class RecordingTransport: Transport {
    private let state = Mutex<(messages: [String], closed: Disconnect?, accept: Bool, pings: Int)>(([], nil, true, 0))
    let unidirectional: Bool
    /// The event loop a fan-out delivers to this transport on; nil: delivered from the broker's thread.
    let fanOutBatcher: FlushBatcher?

    init(unidirectional: Bool = false, batcher: FlushBatcher? = nil) {
        self.unidirectional = unidirectional
        self.fanOutBatcher = batcher
    }

    var pings: Int { state.withLock { $0.pings } }

    func ping() { state.withLock { $0.pings += 1 } }

    var messages: [String] { state.withLock { $0.messages } }
    var closed: Disconnect? { state.withLock { $0.closed } }

    func refuseWrites() { state.withLock { $0.accept = false } }

    func write(_ message: OutboundMessage) -> Bool {
        state.withLock { state in
            guard state.accept else { return false }
            state.messages.append(String(buffer: message.payload))
            return true
        }
    }

    func close(_ disconnect: Disconnect) {
        state.withLock { $0.closed = disconnect }
    }

    /// Parsed messages (each may hold one JSON object).
    var replies: [JSONValue] { messages.compactMap { JSONValue.parse(Array($0.utf8)) } }
}

func makeNode(_ configure: (inout GatewayConfiguration) -> Void = { _ in }) -> Node {
    var configuration = GatewayConfiguration()
    configuration.tokenSecret = "secret"
    var chat = ChannelOptions()
    chat.allowSubscribeForClient = true
    chat.presence = true
    chat.historySize = 10
    chat.historyTTL = 60
    chat.forceRecovery = true
    chat.allowPublishForSubscriber = true
    chat.allowPresenceForSubscriber = true
    chat.allowHistoryForSubscriber = true
    configuration.namespaces = [NamespaceConfiguration(name: "chat", options: chat), NamespaceConfiguration(name: "locked")]
    configure(&configuration)
    return Node(configuration: configuration, broker: MemoryBroker(), presence: MemoryPresenceManager(), logger: Logger(label: "test"))
}

extension Client {
    func send(_ json: String) async {
        await handle(ByteBuffer(string: json))
    }
}
