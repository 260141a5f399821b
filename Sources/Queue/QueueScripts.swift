import RedisClient

/// Every multi-key change of the queues, as Lua scripts (atomic in Redis, loaded once by sha).
/// Times come from the server's clock (`TIME`) so producers and workers on different hosts agree.
enum QueueScripts {
    /// KEYS: target (stream, or delayed set when ARGV[3] > 0), idempotency key (optional)
    /// ARGV: job id, idempotency TTL ms, delay ms, delayed member, then the stream fields.
    /// Returns {job id, 1 if it was a duplicate else 0}.
    static let enqueue = RedisScript(
        """
        if KEYS[2] then
          if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
            return {redis.call('GET', KEYS[2]), 1}
          end
        end
        local delay = tonumber(ARGV[3])
        if delay > 0 then
          local t = redis.call('TIME')
          local due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + delay
          redis.call('ZADD', KEYS[1], string.format('%d', due), ARGV[4])
        else
          redis.call('XADD', KEYS[1], '*', unpack(ARGV, 5))
        end
        return {ARGV[1], 0}
        """)

    /// Moves due members of a delayed set to the stream. Safe with any number of workers: the
    /// range and the removal happen in one script.
    /// KEYS: delayed set, stream. ARGV: max members to move.
    /// Returns {moved, ms until the next member is due (-1 when none)}.
    static let promote = RedisScript(
        """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now), 'LIMIT', 0, tonumber(ARGV[1]))
        for _, member in ipairs(due) do
          redis.call('XADD', KEYS[2], '*', unpack(cjson.decode(member)))
          redis.call('ZREM', KEYS[1], member)
        end
        local nextDue = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
        local wait = -1
        if nextDue[2] then
          wait = math.max(0, tonumber(nextDue[2]) - now)
        end
        return {#due, wait}
        """)

    /// Acknowledges finished entries and deletes them (XACK + XDEL in one step, so an entry is
    /// never left acknowledged but still counted in XLEN).
    /// KEYS: stream. ARGV: group, entry ids... Returns the number acknowledged.
    static let ack = RedisScript(
        """
        local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
        redis.call('XDEL', KEYS[1], unpack(ARGV, 2))
        return acked
        """)

    /// Takes a failed run out of the stream and schedules the next attempt in the delayed set.
    /// Does nothing when the entry is no longer pending (another worker finished it meanwhile).
    /// KEYS: stream, delayed set. ARGV: group, entry id, delay ms, delayed member. Returns 1/0.
    static let retry = RedisScript(
        """
        if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
        redis.call('XDEL', KEYS[1], ARGV[2])
        local t = redis.call('TIME')
        local due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[3])
        redis.call('ZADD', KEYS[2], string.format('%d', due), ARGV[4])
        return 1
        """)

    /// Moves a job that used up its attempts from its stream to the failed stream.
    /// KEYS: stream, failed stream. ARGV: group, entry id, then the failed entry's fields.
    /// Returns 1/0 like `retry`.
    static let bury = RedisScript(
        """
        if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
        redis.call('XDEL', KEYS[1], ARGV[2])
        redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))
        return 1
        """)

    /// Extends this worker's claim on running entries (XCLAIM JUSTID resets their idle time
    /// without counting a delivery), but only on entries it still owns: an entry another worker
    /// reclaimed meanwhile is not stolen back.
    /// KEYS: stream. ARGV: group, consumer, entry ids... Returns the ids still owned.
    static let extend = RedisScript(
        """
        local owned = {}
        for i = 3, #ARGV do
          local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
          if p[1] and p[1][2] == ARGV[2] then
            redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
            owned[#owned + 1] = ARGV[i]
          end
        end
        return owned
        """)

    /// Puts a failed job back on its queue with its attempts reset.
    /// KEYS: failed stream, target stream. ARGV: failed entry id, expected queue name.
    /// Returns the job id, or false when the entry is gone or belongs to another queue.
    static let resurrect = RedisScript(
        """
        local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
        if not found[1] then return false end
        local raw = found[1][2]
        local skip = {queue = true, att = true, err = true, failed_at = true, error = true}
        local fields = {}
        local queue, jobId
        for i = 1, #raw, 2 do
          local k, v = raw[i], raw[i + 1]
          if k == 'queue' then queue = v end
          if k == 'id' then jobId = v end
          if not skip[k] then
            fields[#fields + 1] = k
            fields[#fields + 1] = v
          end
        end
        if queue ~= ARGV[2] then return false end
        fields[#fields + 1] = 'att'
        fields[#fields + 1] = '0'
        redis.call('XADD', KEYS[2], '*', unpack(fields))
        redis.call('XDEL', KEYS[1], ARGV[1])
        return jobId
        """)

    /// Deletes the failed stream. KEYS: failed stream. Returns how many entries it held.
    static let purge = RedisScript(
        """
        local n = redis.call('XLEN', KEYS[1])
        redis.call('DEL', KEYS[1])
        return n
        """)
}
