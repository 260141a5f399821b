/// Publishing events to gateway channels from the api and workers: through the gateway's engine
/// (Redis: history, offsets and recovery as for any publication), or through a
/// Centrifugo-compatible server's HTTP API; and `LivePublisher`, which never blocks or fails its
/// caller (failures are logged and counted).
import AsyncHTTPClient
import Metrics
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import RedisClient

/// Publishes one event to one gateway channel.
public protocol RealtimePublisher: Sendable {
    func publish(channel: String, event: RealtimeEvent) async throws
}

/// Publishes through the gateway's Redis engine with the same script the gateway runs, so a
/// publication gets its offset, enters the channel's history (when its namespace keeps one) and
/// reaches every gateway node's subscribers.
public struct EngineRealtimePublisher: RealtimePublisher {
    public let redis: RedisClient
    public let keys: RealtimeEngineKeys
    /// History options by namespace (channels outside them keep no history).
    public let namespaces: [String: RealtimeNamespace]
    /// Seconds a channel's meta (epoch, offset) outlives its last publication.
    public let historyMetaTTL: Int

    public init(
        redis: RedisClient, prefix: String? = nil, namespaces: [RealtimeNamespace] = LiveSupportChannels.namespaces,
        historyMetaTTL: Int = 30 * 24 * 3600
    ) {
        self.redis = redis
        self.keys = RealtimeEngineKeys(prefix: prefix)
        var byName: [String: RealtimeNamespace] = [:]
        for namespace in namespaces { byName[namespace.name] = namespace }
        self.namespaces = byName
        self.historyMetaTTL = historyMetaTTL
    }

    static func namespace(of channel: String) -> String? {
        var name = Substring(channel)
        if name.hasPrefix("$") { name = name.dropFirst() }
        return name.firstIndex(of: ":").map { String(name[..<$0]) }
    }

    public func publish(channel: String, event: RealtimeEvent) async throws {
        let publication = "{\"data\":" + event.json + "}"
        let options = Self.namespace(of: channel).flatMap { namespaces[$0] }
        if let options, options.keepsHistory {
            _ = try await redis.evalScript(
                RealtimeEngineScripts.publish, keys: [keys.streamKey(channel), keys.metaKey(channel)],
                args: [
                    publication, options.historySize, options.historyTTL, max(historyMetaTTL, options.historyTTL),
                    redis.key(keys.pubsubChannel(channel)), RealtimeEngineScripts.newEpoch(),
                ])
        } else {
            _ = try await redis.publish(keys.pubsubChannel(channel), RealtimeEngineScripts.unpositionedPayload(publication))
        }
    }
}

/// Publishes through the HTTP API of `switchboard gateway` or Centrifugo (`POST {url}/api/publish`
/// with `X-API-Key`).
public struct CentrifugoHTTPPublisher: RealtimePublisher {
    public let url: String
    public let apiKey: String
    public let client: HTTPClient
    public let timeout: TimeAmount

    public init(url: String, apiKey: String, client: HTTPClient = .shared, timeout: TimeAmount = .seconds(5)) {
        self.url = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.apiKey = apiKey
        self.client = client
        self.timeout = timeout
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public func publish(channel: String, event: RealtimeEvent) async throws {
        let body = "{\"channel\":" + RealtimeEvent.serialize(channel) + ",\"data\":" + event.json + "}"
        var request = HTTPClientRequest(url: url + "/api/publish")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "X-API-Key", value: apiKey)
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await client.execute(request, timeout: timeout)
        let bytes = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok else { throw Failure(description: "the realtime API answered \(response.status.code)") }
        // Centrifugo answers 200 with {"error": {...}} for a refused publication.
        if let object = try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView)) as? [String: Any], let error = object["error"] {
            throw Failure(description: "the realtime API refused the publication: \(error)")
        }
    }
}

/// The publisher the api and workers use: sends in the background (a caller never waits for the
/// gateway side), and a failure is logged and counted in `switchboard_realtime_publish_failures_total`,
/// never thrown. Events of one `LivePublisher` to one channel go out in the order they were sent.
public final class LivePublisher: Sendable {
    public let publisher: any RealtimePublisher
    let logger: Logger
    let failures = Counter(label: "switchboard_realtime_publish_failures_total")
    let published = Counter(label: "switchboard_realtime_publications_total")
    let continuation: AsyncStream<(String, RealtimeEvent)>.Continuation
    let worker: Task<Void, Never>

    public init(publisher: any RealtimePublisher, logger: Logger) {
        self.publisher = publisher
        self.logger = logger
        let (stream, continuation) = AsyncStream<(String, RealtimeEvent)>.makeStream(bufferingPolicy: .bufferingNewest(10_000))
        self.continuation = continuation
        let failures = self.failures, published = self.published
        worker = Task {
            for await (channel, event) in stream {
                do {
                    try await publisher.publish(channel: channel, event: event)
                    published.increment()
                } catch {
                    failures.increment()
                    logger.warning("realtime publication failed", metadata: ["channel": "\(channel)", "type": "\(event.type)", "error": "\(error)"])
                }
            }
        }
    }

    deinit {
        continuation.finish()
    }

    /// Queues `event` for `channel` and returns at once.
    public func send(_ event: RealtimeEvent, to channel: String) {
        if case .dropped = continuation.yield((channel, event)) {
            failures.increment()
            logger.warning("realtime publication dropped: the queue is full", metadata: ["channel": "\(channel)"])
        }
    }

    /// Publishes and waits for the outcome (for callers that want the ordering with their own
    /// response); a failure is still only logged and counted.
    public func publishNow(_ event: RealtimeEvent, to channel: String) async {
        do {
            try await publisher.publish(channel: channel, event: event)
            published.increment()
        } catch {
            failures.increment()
            logger.warning("realtime publication failed", metadata: ["channel": "\(channel)", "type": "\(event.type)", "error": "\(error)"])
        }
    }
}
