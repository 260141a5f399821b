/// The broker abstraction (after centrifuge's broker.go): the `Broker` protocol, the handler it delivers to,
/// and the options and results of publishing and reading history.
import NIOCore
import SwitchboardCore

/// Receives what a broker delivers to this node. Called from the broker's delivery context;
/// implementations must not block.
protocol BrokerEventHandler: AnyObject, Sendable {
    func handlePublication(channel: String, publication: Publication, position: StreamPosition)
    /// A publication as another node encoded it (`Publication.json`, without the offset); the
    /// default decodes it and calls `handlePublication`.
    func handleEncodedPublication(channel: String, offset: UInt64, epoch: String, json: ByteBuffer)
    func handleJoin(channel: String, info: ClientInfo)
    func handleLeave(channel: String, info: ClientInfo)
    func handleControl(_ command: ControlCommand)
    /// The broker's link to the other nodes broke and is whole again: publications made
    /// meanwhile never reached this node, so subscribers may be behind their channels.
    func handleResubscribed()
}

extension BrokerEventHandler {
    func handleResubscribed() {}

    func handleEncodedPublication(channel: String, offset: UInt64, epoch: String, json: ByteBuffer) {
        defaultHandleEncodedPublication(channel: channel, offset: offset, epoch: epoch, json: json)
    }

    func defaultHandleEncodedPublication(channel: String, offset: UInt64, epoch: String, json: ByteBuffer) {
        guard let value = JSONValue.parse(json.readableBytesView), var publication = Publication(json: value) else { return }
        publication.offset = offset
        handlePublication(channel: channel, publication: publication, position: StreamPosition(offset: offset, epoch: epoch))
    }
}

/// History options of one publish.
struct PublishOptions: Sendable {
    var historySize = 0
    var historyTTL = 0
    var historyMetaTTL = 0
    /// A publish repeated with the same key (per channel) within `idempotentResultTTL` seconds is
    /// not published again; it answers the first one's position.
    var idempotencyKey: String?
    var idempotentResultTTL = 300

    var keepsHistory: Bool { historySize > 0 && historyTTL > 0 }
}

/// What to read from a channel's history.
struct HistoryQuery: Sendable {
    /// Publications after this position; nil reads from the start.
    var since: StreamPosition?
    /// 0 returns only the current position, a negative value returns everything kept.
    var limit: Int
    var reverse = false
    var metaTTL = 0
}

struct HistoryResult: Sendable {
    var publications: [Publication]
    var position: StreamPosition
}

/// Moves publications, join/leave events and control commands between nodes, and keeps history.
/// `subscribe`/`unsubscribe` tell it which channels this node has local subscribers for.
protocol Broker: Sendable {
    func start(handler: any BrokerEventHandler) async throws
    func stop() async
    func subscribe(_ channel: String) async throws
    func unsubscribe(_ channel: String) async throws
    /// Publishes (and appends to history when the options keep history); `completion` runs once,
    /// with the new position or the error. Returns as soon as the publish is queued: publishes
    /// started one after another take effect (reach history and subscribers) in that order, so a
    /// caller may have several in flight without reordering a channel's publications.
    func startPublish(
        channel: String, publication: Publication, options: PublishOptions,
        completion: @escaping @Sendable (Result<StreamPosition, any Error>) -> Void)
    func publishJoin(channel: String, info: ClientInfo) async throws
    func publishLeave(channel: String, info: ClientInfo) async throws
    func publishControl(_ command: ControlCommand) async throws
    func history(channel: String, query: HistoryQuery) async throws -> HistoryResult
    func removeHistory(channel: String) async throws
}

extension Broker {
    /// Publishes and waits for the new position.
    func publish(channel: String, publication: Publication, options: PublishOptions) async throws -> StreamPosition {
        try await awaitCompletion { startPublish(channel: channel, publication: publication, options: options, completion: $0) }
    }
}

/// Awaits an operation that reports through a completion handler (publishes are started that way
/// so a caller can queue several without waiting); an error thrown by `start` itself counts too.
func awaitCompletion<T: Sendable, Failure: Error>(
    _ start: (@escaping @Sendable (Result<T, Failure>) -> Void) throws -> Void
) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        do {
            try start { continuation.resume(with: $0.mapError { $0 }) }
        } catch {
            continuation.resume(throwing: error)
        }
    }
}
