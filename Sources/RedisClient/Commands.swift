/// Typed helpers for strings, keys, hashes, sorted sets and lists. They take key names WITHOUT
/// the prefix and apply it themselves.

public enum SetCondition: Sendable { case none, nx, xx }
public enum Expiration: Sendable { case seconds(Int), milliseconds(Int) }

extension RedisClient {
    // MARK: strings and keys

    public func get(_ key: String) async throws -> [UInt8]? {
        try await send(RedisCommand("GET", self.key(key))).bytes
    }

    /// SET with an optional NX/XX condition and EX/PX expiry; false when the condition was not met.
    @discardableResult
    public func set(
        _ key: String, _ value: some RESPArgument, condition: SetCondition = .none, expiration: Expiration? = nil
    ) async throws -> Bool {
        var args: [any RESPArgument] = [self.key(key), value]
        switch expiration {
        case .seconds(let s): args += ["EX", s]
        case .milliseconds(let ms): args += ["PX", ms]
        case nil: break
        }
        switch condition {
        case .nx: args.append("NX")
        case .xx: args.append("XX")
        case .none: break
        }
        return try await !send(RedisCommand("SET", arguments: args)).isNull
    }

    @discardableResult
    public func del(_ keys: String...) async throws -> Int {
        try await del(keys)
    }

    @discardableResult
    public func del(_ keys: [String]) async throws -> Int {
        try await integer(RedisCommand("DEL", arguments: keys.map { self.key($0) }))
    }

    public func incr(_ key: String) async throws -> Int64 {
        try await int64(RedisCommand("INCR", self.key(key)))
    }

    public func incrBy(_ key: String, _ n: Int64) async throws -> Int64 {
        try await int64(RedisCommand("INCRBY", self.key(key), n))
    }

    @discardableResult
    public func expire(_ key: String, seconds: Int) async throws -> Bool {
        try await integer(RedisCommand("EXPIRE", self.key(key), seconds)) == 1
    }

    @discardableResult
    public func pexpire(_ key: String, milliseconds: Int) async throws -> Bool {
        try await integer(RedisCommand("PEXPIRE", self.key(key), milliseconds)) == 1
    }

    /// Seconds to live; -1 without expiry, -2 when the key does not exist.
    public func ttl(_ key: String) async throws -> Int64 {
        try await int64(RedisCommand("TTL", self.key(key)))
    }

    /// Milliseconds to live; -1 without expiry, -2 when the key does not exist.
    public func pttl(_ key: String) async throws -> Int64 {
        try await int64(RedisCommand("PTTL", self.key(key)))
    }

    public func exists(_ key: String) async throws -> Bool {
        try await integer(RedisCommand("EXISTS", self.key(key))) > 0
    }

    // MARK: hashes

    @discardableResult
    public func hset(_ key: String, _ fields: [(String, any RESPArgument)]) async throws -> Int {
        var args: [any RESPArgument] = [self.key(key)]
        args.reserveCapacity(1 + fields.count * 2)
        for (name, value) in fields {
            args.append(name)
            args.append(value)
        }
        return try await integer(RedisCommand("HSET", arguments: args))
    }

    public func hget(_ key: String, _ field: String) async throws -> [UInt8]? {
        try await send(RedisCommand("HGET", self.key(key), field)).bytes
    }

    public func hgetall(_ key: String) async throws -> [String: [UInt8]] {
        let items = try await send(RedisCommand("HGETALL", self.key(key))).array ?? []
        var result: [String: [UInt8]] = [:]
        var index = 0
        while index + 1 < items.count {
            if let name = items[index].string { result[name] = items[index + 1].bytes ?? [] }
            index += 2
        }
        return result
    }

    @discardableResult
    public func hdel(_ key: String, _ fields: String...) async throws -> Int {
        try await integer(RedisCommand("HDEL", arguments: [self.key(key)] + fields))
    }

    public func hincrby(_ key: String, _ field: String, _ n: Int64) async throws -> Int64 {
        try await int64(RedisCommand("HINCRBY", self.key(key), field, n))
    }

    // MARK: sorted sets

    @discardableResult
    public func zadd(_ key: String, _ members: [(score: Double, member: any RESPArgument)]) async throws -> Int {
        var args: [any RESPArgument] = [self.key(key)]
        args.reserveCapacity(1 + members.count * 2)
        for (score, member) in members {
            args.append(score)
            args.append(member)
        }
        return try await integer(RedisCommand("ZADD", arguments: args))
    }

    /// ZRANGEBYSCORE key min max [LIMIT offset count]; `min`/`max` take Redis syntax ("-inf", "(5", "10").
    public func zrangeByScore(
        _ key: String, min: String, max: String, limit: (offset: Int, count: Int)? = nil
    ) async throws -> [[UInt8]] {
        var args: [any RESPArgument] = [self.key(key), min, max]
        if let limit { args += ["LIMIT", limit.offset, limit.count] }
        return try await byteArrays(RedisCommand("ZRANGEBYSCORE", arguments: args))
    }

    @discardableResult
    public func zrem(_ key: String, _ members: [any RESPArgument]) async throws -> Int {
        try await integer(RedisCommand("ZREM", arguments: [self.key(key)] + members))
    }

    public func zcard(_ key: String) async throws -> Int {
        try await integer(RedisCommand("ZCARD", self.key(key)))
    }

    public func zscore(_ key: String, _ member: some RESPArgument) async throws -> Double? {
        try await send(RedisCommand("ZSCORE", self.key(key), member)).double
    }

    // MARK: lists

    @discardableResult
    public func lpush(_ key: String, _ values: [any RESPArgument]) async throws -> Int {
        try await integer(RedisCommand("LPUSH", arguments: [self.key(key)] + values))
    }

    @discardableResult
    public func rpush(_ key: String, _ values: [any RESPArgument]) async throws -> Int {
        try await integer(RedisCommand("RPUSH", arguments: [self.key(key)] + values))
    }

    public func lpop(_ key: String) async throws -> [UInt8]? {
        try await send(RedisCommand("LPOP", self.key(key))).bytes
    }

    public func rpop(_ key: String) async throws -> [UInt8]? {
        try await send(RedisCommand("RPOP", self.key(key))).bytes
    }

    public func lrange(_ key: String, _ start: Int, _ stop: Int) async throws -> [[UInt8]] {
        try await byteArrays(RedisCommand("LRANGE", self.key(key), start, stop))
    }

    public func llen(_ key: String) async throws -> Int {
        try await integer(RedisCommand("LLEN", self.key(key)))
    }

    // MARK: pub/sub

    /// Publishes to the prefixed channel; returns the number of subscribers that received it.
    @discardableResult
    public func publish(_ channel: String, _ message: some RESPArgument) async throws -> Int {
        try await integer(RedisCommand("PUBLISH", self.key(channel), message))
    }

    // MARK: reply conversion

    func int64(_ command: RedisCommand) async throws -> Int64 {
        let reply = try await send(command)
        guard let value = reply.int else { throw RedisError.protocolError("\(command.name): expected an integer, got \(reply)") }
        return value
    }

    func integer(_ command: RedisCommand) async throws -> Int {
        Int(try await int64(command))
    }

    func byteArrays(_ command: RedisCommand) async throws -> [[UInt8]] {
        let reply = try await send(command)
        if reply.isNull { return [] }
        guard let items = reply.array else { throw RedisError.protocolError("\(command.name): expected an array, got \(reply)") }
        return items.map { $0.bytes ?? [] }
    }
}
