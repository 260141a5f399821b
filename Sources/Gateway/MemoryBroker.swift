/// The in-memory broker (after centrifuge's broker_memory.go): one process, history kept in memory.
import Foundation
import Synchronization

/// The single-node engine: publications go straight to this node's hub; history lives in memory.
final class MemoryBroker: Broker {
    private struct Stream {
        var epoch: String
        var offset: UInt64 = 0
        var publications: [Publication] = []
        var expiresAt: Date = .distantFuture
    }

    private let handler = Mutex<(any BrokerEventHandler)?>(nil)
    private let streams = Mutex<[String: Stream]>([:])
    /// Serialises publishing so every channel's publications reach the hub in offset order; holds
    /// the results of idempotent publishes by channel and key.
    private let publishLock = Mutex<[IdempotencyKey: (position: StreamPosition, expiresAt: ContinuousClock.Instant)]>([:])

    private struct IdempotencyKey: Hashable {
        var channel: String
        var key: String
    }

    init() {}

    func start(handler: any BrokerEventHandler) async throws {
        self.handler.withLock { $0 = handler }
    }

    func stop() async {
        handler.withLock { $0 = nil }
    }

    func subscribe(_ channel: String) async throws {}
    func unsubscribe(_ channel: String) async throws {}

    /// Publishes at once, on the caller's thread, and completes before returning.
    func startPublish(
        channel: String, publication: Publication, options: PublishOptions,
        completion: @escaping @Sendable (Result<StreamPosition, any Error>) -> Void
    ) {
        completion(.success(publishNow(channel: channel, publication: publication, options: options)))
    }

    private func publishNow(channel: String, publication: Publication, options: PublishOptions) -> StreamPosition {
        let handler = self.handler.withLock { $0 }
        return publishLock.withLock { idempotent in
            let now = ContinuousClock.now
            let idempotencyKey = options.idempotencyKey.map { IdempotencyKey(channel: channel, key: $0) }
            if let idempotencyKey {
                if idempotent.count > 10_000 { idempotent = idempotent.filter { $0.value.expiresAt > now } }
                if let earlier = idempotent[idempotencyKey], earlier.expiresAt > now { return earlier.position }
            }
            var publication = publication
            var position = StreamPosition(offset: 0, epoch: "")
            if options.keepsHistory {
                position = streams.withLock { streams in
                    // Changed in place in the dictionary: a copy taken out and stored back shared
                    // its history with the dictionary, so every append copied the whole history.
                    Self.append(&publication, to: &streams[channel, default: Stream(epoch: Self.newEpoch())], options: options, now: Date())
                }
            }
            if let idempotencyKey {
                idempotent[idempotencyKey] = (position, now + .seconds(options.idempotentResultTTL))
            }
            handler?.handlePublication(channel: channel, publication: publication, position: position)
            return position
        }
    }

    /// Appends `publication` (given its offset) to `stream`, keeping at most `historySize`.
    private static func append(_ publication: inout Publication, to stream: inout Stream, options: PublishOptions, now: Date) -> StreamPosition {
        if stream.expiresAt < now { stream.publications.removeAll() }
        stream.offset += 1
        publication.offset = stream.offset
        stream.publications.append(publication)
        if stream.publications.count > options.historySize {
            stream.publications.removeFirst(stream.publications.count - options.historySize)
        }
        stream.expiresAt = now.addingTimeInterval(TimeInterval(options.historyTTL))
        return StreamPosition(offset: stream.offset, epoch: stream.epoch)
    }

    func publishJoin(channel: String, info: ClientInfo) async throws {
        handler.withLock { $0 }?.handleJoin(channel: channel, info: info)
    }

    func publishLeave(channel: String, info: ClientInfo) async throws {
        handler.withLock { $0 }?.handleLeave(channel: channel, info: info)
    }

    func publishControl(_ command: ControlCommand) async throws {
        handler.withLock { $0 }?.handleControl(command)
    }

    func history(channel: String, query: HistoryQuery) async throws -> HistoryResult {
        streams.withLock { streams in
            var stream = streams[channel] ?? Stream(epoch: Self.newEpoch())
            if stream.expiresAt < Date() { stream.publications.removeAll() }
            streams[channel] = stream
            let position = StreamPosition(offset: stream.offset, epoch: stream.epoch)
            guard query.limit != 0 else { return HistoryResult(publications: [], position: position) }
            var publications = stream.publications
            if let since = query.since {
                publications = publications.filter { query.reverse ? $0.offset < since.offset : $0.offset > since.offset }
            }
            if query.reverse { publications.reverse() }
            if query.limit > 0, publications.count > query.limit { publications = Array(publications.prefix(query.limit)) }
            return HistoryResult(publications: publications, position: position)
        }
    }

    func removeHistory(channel: String) async throws {
        streams.withLock { streams in
            streams[channel]?.publications.removeAll()
        }
    }

    static func newEpoch() -> String {
        var generator = RandomBytes()
        return String(UInt32.random(in: .min ... .max, using: &generator), radix: 36)
    }
}
