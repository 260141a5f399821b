import NIOCore

/// Stream commands. Stream keys are given WITHOUT the prefix; `StreamBatch.stream` comes back
/// without it too.

public enum StreamTrim: Sendable {
    /// MAXLEN ~ n
    case approximately(Int)
    /// MAXLEN n
    case exactly(Int)
}

/// One stream entry: its id and its fields, in order and by name.
public struct StreamEntry: Sendable, Hashable {
    public var id: String
    public var orderedFields: [(name: String, value: [UInt8])] {
        didSet { fields = Self.index(orderedFields) }
    }
    /// The fields by name (the last one wins if a name repeats).
    public private(set) var fields: [String: [UInt8]]

    public init(id: String, orderedFields: [(name: String, value: [UInt8])]) {
        self.id = id
        self.orderedFields = orderedFields
        self.fields = Self.index(orderedFields)
    }

    public init(id: String, fields: [String: [UInt8]]) {
        self.init(id: id, orderedFields: fields.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
    }

    /// A field as UTF-8 text.
    public func string(_ name: String) -> String? {
        fields[name].map { String(decoding: $0, as: UTF8.self) }
    }

    public static func == (a: StreamEntry, b: StreamEntry) -> Bool {
        a.id == b.id && a.orderedFields.elementsEqual(b.orderedFields) { $0.name == $1.name && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(id)
        for field in orderedFields {
            hasher.combine(field.name)
            hasher.combine(field.value)
        }
    }

    private static func index(_ ordered: [(name: String, value: [UInt8])]) -> [String: [UInt8]] {
        var fields: [String: [UInt8]] = [:]
        fields.reserveCapacity(ordered.count)
        for (name, value) in ordered { fields[name] = value }
        return fields
    }
}

/// The entries read from one stream.
public struct StreamBatch: Sendable {
    /// The stream key WITHOUT the prefix.
    public var stream: String
    public var entries: [StreamEntry]

    public init(stream: String, entries: [StreamEntry]) {
        self.stream = stream
        self.entries = entries
    }
}

/// One entry of XPENDING's extended form.
public struct PendingEntry: Sendable {
    public var id: String
    public var consumer: String
    /// Time since the entry was last delivered.
    public var idle: Duration
    public var deliveries: Int

    public init(id: String, consumer: String, idle: Duration, deliveries: Int) {
        self.id = id
        self.consumer = consumer
        self.idle = idle
        self.deliveries = deliveries
    }
}

/// XPENDING's summary form.
public struct PendingSummary: Sendable {
    public var count: Int
    public var smallestID: String?
    public var largestID: String?
    public var consumers: [(name: String, count: Int)]

    public init(count: Int, smallestID: String?, largestID: String?, consumers: [(name: String, count: Int)]) {
        self.count = count
        self.smallestID = smallestID
        self.largestID = largestID
        self.consumers = consumers
    }
}

extension RedisClient {
    /// XADD; returns the new entry's id.
    @discardableResult
    public func xadd(
        _ stream: String, id: String = "*", fields: [(String, any RESPArgument)], maxLength: StreamTrim? = nil
    ) async throws -> String {
        try await stringReply(Self.xaddCommand(key(stream), id: id, fields: fields, maxLength: maxLength))
    }

    /// The XADD command for an already prefixed key (for pipelines).
    public static func xaddCommand(
        _ prefixedStream: String, id: String = "*", fields: [(String, any RESPArgument)], maxLength: StreamTrim? = nil
    ) -> RedisCommand {
        var args: [any RESPArgument] = [prefixedStream]
        args.reserveCapacity(4 + fields.count * 2)
        switch maxLength {
        case .approximately(let n): args += ["MAXLEN", "~", n]
        case .exactly(let n): args += ["MAXLEN", n]
        case nil: break
        }
        args.append(id)
        for (name, value) in fields {
            args.append(name)
            args.append(value)
        }
        return RedisCommand("XADD", arguments: args)
    }

    /// XGROUP CREATE [MKSTREAM]; false when the group already exists (BUSYGROUP).
    @discardableResult
    public func xgroupCreate(_ stream: String, group: String, id: String = "$", mkstream: Bool = true) async throws -> Bool {
        var args: [any RESPArgument] = ["CREATE", key(stream), group, id]
        if mkstream { args.append("MKSTREAM") }
        do {
            _ = try await send(RedisCommand("XGROUP", arguments: args))
            return true
        } catch let error as RedisError where error.serverErrorCode == "BUSYGROUP" {
            return false
        }
    }

    /// XGROUP DESTROY; true when the group existed.
    @discardableResult
    public func xgroupDestroy(_ stream: String, group: String) async throws -> Bool {
        try await integer(RedisCommand("XGROUP", "DESTROY", key(stream), group)) == 1
    }

    /// XREADGROUP. With `block` the command runs on an exclusively leased connection; an empty
    /// result means the block time ran out.
    public func xreadgroup(
        group: String, consumer: String, streams: [(key: String, id: String)], count: Int? = nil,
        block: Duration? = nil, noAck: Bool = false
    ) async throws -> [StreamBatch] {
        var args: [any RESPArgument] = ["GROUP", group, consumer]
        if let count { args += ["COUNT", count] }
        if let block { args += ["BLOCK", Self.milliseconds(block)] }
        if noAck { args.append("NOACK") }
        args.append("STREAMS")
        args += streams.map { key($0.key) }
        args += streams.map(\.id)
        return try await streamRead(RedisCommand("XREADGROUP", arguments: args), block: block)
    }

    /// XREAD. With `block` the command runs on an exclusively leased connection.
    public func xread(
        streams: [(key: String, id: String)], count: Int? = nil, block: Duration? = nil
    ) async throws -> [StreamBatch] {
        var args: [any RESPArgument] = []
        if let count { args += ["COUNT", count] }
        if let block { args += ["BLOCK", Self.milliseconds(block)] }
        args.append("STREAMS")
        args += streams.map { key($0.key) }
        args += streams.map(\.id)
        return try await streamRead(RedisCommand("XREAD", arguments: args), block: block)
    }

    @discardableResult
    public func xack(_ stream: String, group: String, ids: [String]) async throws -> Int {
        try await integer(RedisCommand("XACK", arguments: [key(stream), group] + ids))
    }

    @discardableResult
    public func xdel(_ stream: String, ids: [String]) async throws -> Int {
        try await integer(RedisCommand("XDEL", arguments: [key(stream)] + ids))
    }

    /// XAUTOCLAIM: takes over entries idle for at least `minIdle`. `deleted` lists the ids
    /// that were pending but no longer exist in the stream (Redis 7).
    public func xautoclaim(
        _ stream: String, group: String, consumer: String, minIdle: Duration, start: String = "0-0", count: Int? = nil
    ) async throws -> (next: String, entries: [StreamEntry], deleted: [String]) {
        var args: [any RESPArgument] = [key(stream), group, consumer, Self.milliseconds(minIdle), start]
        if let count { args += ["COUNT", count] }
        let reply = try await send(RedisCommand("XAUTOCLAIM", arguments: args))
        guard let parts = reply.array, parts.count >= 2, let next = parts[0].string else {
            throw RedisError.protocolError("XAUTOCLAIM: unexpected reply \(reply)")
        }
        let entries = try Self.entries(parts[1])
        let deleted = parts.count > 2 ? (parts[2].array ?? []).compactMap(\.string) : []
        return (next, entries, deleted)
    }

    /// XCLAIM; also used to extend a claim (it resets the idle time).
    @discardableResult
    public func xclaim(
        _ stream: String, group: String, consumer: String, minIdle: Duration, ids: [String], justId: Bool = false
    ) async throws -> [StreamEntry] {
        var args: [any RESPArgument] = [key(stream), group, consumer, Self.milliseconds(minIdle)]
        args += ids
        if justId { args.append("JUSTID") }
        let reply = try await send(RedisCommand("XCLAIM", arguments: args))
        if justId {
            return (reply.array ?? []).compactMap { $0.string.map { StreamEntry(id: $0, orderedFields: []) } }
        }
        return try Self.entries(reply)
    }

    public func xpendingSummary(_ stream: String, group: String) async throws -> PendingSummary {
        let reply = try await send(RedisCommand("XPENDING", key(stream), group))
        guard let parts = reply.array, parts.count >= 4 else {
            throw RedisError.protocolError("XPENDING: unexpected reply \(reply)")
        }
        let consumers: [(name: String, count: Int)] = (parts[3].array ?? []).compactMap { item in
            guard let pair = item.array, pair.count >= 2, let name = pair[0].string, let n = pair[1].int else { return nil }
            return (name, Int(n))
        }
        return PendingSummary(
            count: Int(parts[0].int ?? 0), smallestID: parts[1].string, largestID: parts[2].string, consumers: consumers)
    }

    public func xpending(
        _ stream: String, group: String, start: String = "-", end: String = "+", count: Int,
        consumer: String? = nil, minIdle: Duration? = nil
    ) async throws -> [PendingEntry] {
        var args: [any RESPArgument] = [key(stream), group]
        if let minIdle { args += ["IDLE", Self.milliseconds(minIdle)] }
        args += [start, end, count]
        if let consumer { args.append(consumer) }
        let reply = try await send(RedisCommand("XPENDING", arguments: args))
        return try (reply.array ?? []).map { item in
            guard let f = item.array, f.count >= 4, let id = f[0].string, let consumer = f[1].string,
                let idle = f[2].int, let deliveries = f[3].int
            else { throw RedisError.protocolError("XPENDING: unexpected entry \(item)") }
            return PendingEntry(id: id, consumer: consumer, idle: .milliseconds(idle), deliveries: Int(deliveries))
        }
    }

    public func xlen(_ stream: String) async throws -> Int {
        try await integer(RedisCommand("XLEN", key(stream)))
    }

    public func xrange(_ stream: String, start: String = "-", end: String = "+", count: Int? = nil) async throws -> [StreamEntry] {
        var args: [any RESPArgument] = [key(stream), start, end]
        if let count { args += ["COUNT", count] }
        return try Self.entries(try await send(RedisCommand("XRANGE", arguments: args)))
    }

    public func xrevrange(_ stream: String, end: String = "+", start: String = "-", count: Int? = nil) async throws -> [StreamEntry] {
        var args: [any RESPArgument] = [key(stream), end, start]
        if let count { args += ["COUNT", count] }
        return try Self.entries(try await send(RedisCommand("XREVRANGE", arguments: args)))
    }

    /// XTRIM MAXLEN; returns the number of entries removed.
    @discardableResult
    public func xtrim(_ stream: String, _ trim: StreamTrim) async throws -> Int {
        switch trim {
        case .approximately(let n): return try await integer(RedisCommand("XTRIM", key(stream), "MAXLEN", "~", n))
        case .exactly(let n): return try await integer(RedisCommand("XTRIM", key(stream), "MAXLEN", n))
        }
    }

    /// XINFO STREAM as a map (e.g. "length", "groups", "last-generated-id", "first-entry").
    public func xinfoStream(_ stream: String) async throws -> [String: RESPValue] {
        Self.map(try await send(RedisCommand("XINFO", "STREAM", key(stream))))
    }

    /// XINFO GROUPS: one map per group ("name", "consumers", "pending", "last-delivered-id", ...).
    public func xinfoGroups(_ stream: String) async throws -> [[String: RESPValue]] {
        (try await send(RedisCommand("XINFO", "GROUPS", key(stream))).array ?? []).map(Self.map)
    }

    // MARK: reply parsing

    private func streamRead(_ command: RedisCommand, block: Duration?) async throws -> [StreamBatch] {
        let reply: RESPValue
        if let block {
            let timeout = configuration.commandTimeout.map { $0 + .milliseconds(Int64(Self.milliseconds(block))) }
            reply = try await withBlockingConnection { connection in
                try await connection.send(command, timeout: timeout)
            }
        } else {
            reply = try await send(command)
        }
        if reply.isNull { return [] }
        guard let streams = reply.array else { throw RedisError.protocolError("\(command.name): unexpected reply \(reply)") }
        return try streams.map { item in
            guard let pair = item.array, pair.count == 2, let name = pair[0].string else {
                throw RedisError.protocolError("\(command.name): unexpected stream \(item)")
            }
            return StreamBatch(stream: unprefixed(name), entries: try Self.entries(pair[1]))
        }
    }

    static func entries(_ reply: RESPValue) throws -> [StreamEntry] {
        if reply.isNull { return [] }
        guard let items = reply.array else { throw RedisError.protocolError("expected stream entries, got \(reply)") }
        var entries: [StreamEntry] = []
        entries.reserveCapacity(items.count)
        for item in items {
            // Entries deleted while pending come back as nil (or with nil fields).
            guard let pair = item.array, pair.count == 2, let id = pair[0].string else { continue }
            let raw = pair[1].array ?? []
            var fields: [(name: String, value: [UInt8])] = []
            fields.reserveCapacity(raw.count / 2)
            var index = 0
            while index + 1 < raw.count {
                fields.append((raw[index].string ?? "", raw[index + 1].bytes ?? []))
                index += 2
            }
            entries.append(StreamEntry(id: id, orderedFields: fields))
        }
        return entries
    }

    static func map(_ reply: RESPValue) -> [String: RESPValue] {
        let items = reply.array ?? []
        var result: [String: RESPValue] = [:]
        var index = 0
        while index + 1 < items.count {
            if let name = items[index].string { result[name] = items[index + 1] }
            index += 2
        }
        return result
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    func stringReply(_ command: RedisCommand) async throws -> String {
        let reply = try await send(command)
        guard let value = reply.string else { throw RedisError.protocolError("\(command.name): expected a string, got \(reply)") }
        return value
    }
}
