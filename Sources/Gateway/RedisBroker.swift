/// The Redis broker (after centrifuge's broker_redis.go): publications, join/leave, control and history
/// shared by every node on one Redis.
import Foundation
import Logging
import NIOCore
import Realtime
import RedisClient
import SwitchboardCore
import Synchronization

/// The multi-node engine. Every node subscribes (one RedisSubscriber per node) to the Redis
/// channels of the gateway channels it has local subscribers for. History is a Redis stream per
/// channel whose entry IDs are the publication offsets; a meta hash holds the offset counter and
/// the epoch. Publishing appends, trims, sets expiries and publishes in one Lua script, so history
/// order and live order agree.
///
/// Keys and scripts: `RealtimeEngineKeys` and `RealtimeEngineScripts` (module `Realtime`).
final class RedisBroker: Broker {
    private let redis: RedisClient
    private let prefix: String
    private let logger: Logger
    private let subscriber: RedisSubscriber
    private let consumer = Mutex<[Task<Void, Never>]>([])
    private let publishes: PublishQueue

    init(redis: RedisClient, prefix: String, logger: Logger) {
        self.redis = redis
        self.prefix = prefix
        self.logger = logger
        self.subscriber = redis.makeSubscriber()
        self.publishes = PublishQueue(redis: redis)
    }

    private var keys: RealtimeEngineKeys { RealtimeEngineKeys(prefix: prefix) }
    private var controlChannel: String { keys.controlChannel }
    private func pubsubChannel(_ channel: String) -> String { keys.pubsubChannel(channel) }
    private func streamKey(_ channel: String) -> String { keys.streamKey(channel) }
    private func metaKey(_ channel: String) -> String { keys.metaKey(channel) }

    func start(handler: any BrokerEventHandler) async throws {
        let channelPrefix = keys.pubsubPrefix
        let controlChannel = self.controlChannel
        let messages = subscriber.messages
        let logger = self.logger
        let task = Task {
            for await message in messages {
                if message.channel == controlChannel {
                    if let value = JSONValue.parse(message.payload.readableBytesView), let command = ControlCommand(json: value) {
                        handler.handleControl(command)
                    }
                } else if message.channel.hasPrefix(channelPrefix) {
                    let channel = String(message.channel.dropFirst(channelPrefix.count))
                    Self.dispatch(channel: channel, payload: message.payload, to: handler, logger: logger)
                }
            }
        }
        // Redis pub/sub drops what is published while the connection is down.
        let resubscriptions = subscriber.resubscriptions
        let resubscribed = Task {
            for await _ in resubscriptions { handler.handleResubscribed() }
        }
        consumer.withLock { $0 = [task, resubscribed] }
        try await subscriber.subscribe([controlChannel])
    }

    /// A message on a channel's Redis channel: `p\n<offset>\n<epoch>\n<json>` for a publication,
    /// `j\n` / `l\n` and the client's JSON for a join or leave. Read in place from the pub/sub
    /// read buffer; the publication's JSON goes on as a slice of it.
    private static func dispatch(channel: String, payload: ByteBuffer, to handler: any BrokerEventHandler, logger: Logger) {
        var payload = payload
        guard payload.readableBytes > 2, let kind = payload.readInteger(as: UInt8.self),
            payload.readInteger(as: UInt8.self) == UInt8(ascii: "\n")
        else { return }
        switch kind {
        case UInt8(ascii: "p"):
            guard let offset = payload.readDecimalLine(), let epoch = payload.readLine() else {
                logger.warning("undecodable publication", metadata: ["channel": "\(channel)"])
                return
            }
            handler.handleEncodedPublication(channel: channel, offset: offset, epoch: String(buffer: epoch), json: payload)
        case UInt8(ascii: "j"), UInt8(ascii: "l"):
            guard let value = JSONValue.parse(payload.readableBytesView), let info = ClientInfo(json: value) else { return }
            if kind == UInt8(ascii: "j") {
                handler.handleJoin(channel: channel, info: info)
            } else {
                handler.handleLeave(channel: channel, info: info)
            }
        default:
            break
        }
    }

    func stop() async {
        await subscriber.close()
        consumer.withLock { $0.forEach { $0.cancel() } }
    }

    func subscribe(_ channel: String) async throws {
        try await subscriber.subscribe([pubsubChannel(channel)])
    }

    func unsubscribe(_ channel: String) async throws {
        try await subscriber.unsubscribe([pubsubChannel(channel)])
    }

    /// The publish scripts live in `Realtime`, shared with the api and workers that publish
    /// into the engine without a gateway.
    static let publishScript = RealtimeEngineScripts.publish
    static let idempotentPublishScript = RealtimeEngineScripts.idempotentPublish

    private func idempotencyKey(_ channel: String, _ key: String) -> String { keys.idempotencyKey(channel, key) }

    func startPublish(
        channel: String, publication: Publication, options: PublishOptions,
        completion: @escaping @Sendable (Result<StreamPosition, any Error>) -> Void
    ) {
        let json = publication.json
        let metaTTL = max(options.historyMetaTTL, options.historyTTL)
        // Keys and the pub/sub channel written into the command as they are, without joining
        // the prefixes and the channel into new strings first.
        let clientPrefix = redis.configuration.keyPrefix
        let keys = self.keys
        let stream = keys.streamKeyArgument(channel, clientPrefix: clientPrefix)
        let meta = keys.metaKeyArgument(channel, clientPrefix: clientPrefix)
        let pubsub = keys.pubsubChannelArgument(channel, clientPrefix: clientPrefix)
        let command: PublishQueue.Command
        if let key = options.idempotencyKey {
            command = .script(
                Self.idempotentPublishScript,
                prefixedKeys: [stream, meta, RESPConcatenation(clientPrefix, idempotencyKey(channel, key))],
                args: [
                    json, options.historySize, options.historyTTL, max(metaTTL, 1), pubsub,
                    MemoryBroker.newEpoch(), max(options.idempotentResultTTL, 1), options.keepsHistory ? "1" : "0",
                ])
        } else if options.keepsHistory {
            command = .script(
                Self.publishScript, prefixedKeys: [stream, meta],
                args: [json, options.historySize, options.historyTTL, metaTTL, pubsub, MemoryBroker.newEpoch()])
        } else {
            command = .plain(RedisCommand("PUBLISH", pubsub, RealtimeEngineScripts.unpositionedPayload(json)))
        }
        publishes.enqueue(command) { result in
            completion(
                result.flatMap { reply in
                    if case .plain = command { return .success(StreamPosition(offset: 0, epoch: "")) }
                    return Result { try Self.decodePosition(reply) }
                })
        }
    }

    private static func decodePosition(_ reply: RESPValue) throws -> StreamPosition {
        guard let values = reply.array, values.count == 2, let offset = values[0].int, let epoch = values[1].string else {
            throw RedisError.protocolError("unexpected publish script reply")
        }
        return StreamPosition(offset: UInt64(offset), epoch: epoch)
    }

    func publishJoin(channel: String, info: ClientInfo) async throws {
        _ = try await redis.publish(pubsubChannel(channel), "j\n" + info.json)
    }

    func publishLeave(channel: String, info: ClientInfo) async throws {
        _ = try await redis.publish(pubsubChannel(channel), "l\n" + info.json)
    }

    func publishControl(_ command: ControlCommand) async throws {
        _ = try await redis.publish(controlChannel, command.json)
    }

    /// Reads the position and a range of the stream atomically. ARGV: first ID, last ID, count
    /// (0 = position only, -1 = all), reverse flag, epoch to create, meta ttl.
    static let historyScript = RedisScript(
        """
        local offset = redis.call('hget', KEYS[2], 'o') or '0'
        local epoch = redis.call('hget', KEYS[2], 'e')
        if not epoch then
          epoch = ARGV[5]
          redis.call('hset', KEYS[2], 'e', epoch)
          redis.call('expire', KEYS[2], ARGV[6])
        end
        local entries = {}
        local count = tonumber(ARGV[3])
        if count ~= 0 then
          if ARGV[4] == '1' then
            if count > 0 then
              entries = redis.call('xrevrange', KEYS[1], ARGV[2], ARGV[1], 'COUNT', count)
            else
              entries = redis.call('xrevrange', KEYS[1], ARGV[2], ARGV[1])
            end
          else
            if count > 0 then
              entries = redis.call('xrange', KEYS[1], ARGV[1], ARGV[2], 'COUNT', count)
            else
              entries = redis.call('xrange', KEYS[1], ARGV[1], ARGV[2])
            end
          end
        end
        return {offset, epoch, entries}
        """)

    func history(channel: String, query: HistoryQuery) async throws -> HistoryResult {
        var first = "-"
        var last = "+"
        if let since = query.since {
            if query.reverse {
                guard since.offset > 1 else { return try await position(channel: channel, query: query) }
                last = "\(since.offset - 1)-0"
            } else {
                first = "\(since.offset + 1)-0"
            }
        }
        let reply = try await redis.evalScript(
            Self.historyScript, keys: [streamKey(channel), metaKey(channel)],
            args: [first, last, query.limit, query.reverse ? "1" : "0", MemoryBroker.newEpoch(), max(query.metaTTL, 60)])
        return try Self.decodeHistory(reply)
    }

    private func position(channel: String, query: HistoryQuery) async throws -> HistoryResult {
        var query = query
        query.since = nil
        query.limit = 0
        return try await history(channel: channel, query: query)
    }

    private static func decodeHistory(_ reply: RESPValue) throws -> HistoryResult {
        guard let values = reply.array, values.count == 3, let offset = values[0].int, let epoch = values[1].string,
            let entries = values[2].array
        else { throw RedisError.protocolError("unexpected history script reply") }
        var publications: [Publication] = []
        publications.reserveCapacity(entries.count)
        for entry in entries {
            guard let pair = entry.array, pair.count == 2, let id = pair[0].string, let fields = pair[1].array, fields.count >= 2,
                let entryOffset = id.split(separator: "-").first.flatMap({ UInt64($0) }),
                let bytes = fields[1].bytes, let value = JSONValue.parse(bytes), var publication = Publication(json: value)
            else { continue }
            publication.offset = entryOffset
            publications.append(publication)
        }
        return HistoryResult(publications: publications, position: StreamPosition(offset: UInt64(offset), epoch: epoch))
    }

    func removeHistory(channel: String) async throws {
        _ = try await redis.send(RedisCommand("DEL", redis.key(streamKey(channel))))
    }
}

extension ByteBuffer {
    /// The bytes up to the next newline (which is read too), or nil when there is none.
    fileprivate mutating func readLine() -> ByteBuffer? {
        guard let newline = readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let line = readSlice(length: newline - readerIndex)
        moveReaderIndex(forwardBy: 1)
        return line
    }

    /// A line of decimal digits as a number; nil for anything else or more than fits.
    fileprivate mutating func readDecimalLine() -> UInt64? {
        guard let line = readLine(), line.readableBytes > 0, line.readableBytes <= 19 else { return nil }
        var value: UInt64 = 0
        for byte in line.readableBytesView {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + UInt64(byte - UInt8(ascii: "0"))
        }
        return value
    }
}
