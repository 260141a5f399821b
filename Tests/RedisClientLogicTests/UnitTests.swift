import NIOCore
import Testing

@testable import RedisClient

@Suite("Redis client without a server")
struct UnitTests {
    @Test func parsesAFullURL() throws {
        let c = try RedisConfiguration(url: "redis://alice:p%40ss@redis.example:6390/3?prefix=app:&pool=7&connect_timeout=1.5&command_timeout=2")
        #expect(c.host == "redis.example")
        #expect(c.port == 6390)
        #expect(c.username == "alice")
        #expect(c.password == "p@ss")
        #expect(c.database == 3)
        #expect(c.keyPrefix == "app:")
        #expect(c.poolSize == 7)
        #expect(c.connectTimeout == .milliseconds(1500))
        #expect(c.commandTimeout == .seconds(2))
    }

    @Test func urlDefaults() throws {
        let c = try RedisConfiguration(url: "redis://127.0.0.1")
        #expect(c.port == 6379)
        #expect(c.database == 0)
        #expect(c.keyPrefix == "sb:")
        #expect(c.poolSize == 4)
        #expect(c.commandTimeout == .seconds(10))
        #expect(try RedisConfiguration(url: "redis://127.0.0.1/0?command_timeout=0").commandTimeout == nil)
        #expect(c.password == nil && c.username == nil)
        let passwordOnly = try RedisConfiguration(url: "redis://:secret@[::1]:7000/")
        #expect(passwordOnly.password == "secret")
        #expect(passwordOnly.username == nil)
        #expect(passwordOnly.host == "::1")
        #expect(passwordOnly.port == 7000)
        let emptyPrefix = try RedisConfiguration(url: "redis://h/0?prefix=")
        #expect(emptyPrefix.keyPrefix == "")
        #expect(c.socketPath == nil && c.endpoint == "127.0.0.1:6379")
    }

    @Test func socketFromTheURL() throws {
        let c = try RedisConfiguration(url: "redis://127.0.0.1:6380/2?socket=/run/redis/redis.sock")
        #expect(c.socketPath == "/run/redis/redis.sock")
        #expect(c.endpoint == "/run/redis/redis.sock")
        #expect(c.database == 2)
    }

    @Test func tlsFromARedissURL() throws {
        let c = try RedisConfiguration(url: "rediss://:pw@redis.example.com:6380/1?ca=/etc/ca.pem&cert=/etc/c.pem&key=/etc/c.key&server_name=r.internal")
        #expect(c.tls == RedisTLS(caFile: "/etc/ca.pem", certificateFile: "/etc/c.pem", keyFile: "/etc/c.key", serverName: "r.internal"))
        #expect(c.host == "redis.example.com" && c.port == 6380 && c.database == 1 && c.password == "pw")
        #expect(try RedisConfiguration(url: "rediss://10.0.0.5").tls == RedisTLS())
        #expect(try RedisConfiguration(url: "rediss://10.0.0.5?verify=false").tls?.verify == false)
        #expect(try RedisConfiguration(url: "redis://10.0.0.5").tls == nil)
    }

    @Test(arguments: [
        ("127.0.0.1:6379", "scheme"),
        ("http://127.0.0.1", "scheme 'http'"),
        ("redis://127.0.0.1/0?ca=/etc/ca.pem", "TLS parameter: use rediss://"),
        ("rediss://127.0.0.1/0?cert=/c.pem", "cert and key go together"),
        ("rediss://127.0.0.1/0?ca=ca.pem", "ca 'ca.pem'"),
        ("rediss://127.0.0.1/0?verify=maybe", "verify 'maybe'"),
        ("rediss://127.0.0.1/0?socket=/run/redis.sock", "Unix socket"),
        ("redis://", "missing host"),
        ("redis://127.0.0.1:abc", "port 'abc'"),
        ("redis://127.0.0.1:70000", "port '70000'"),
        ("redis://127.0.0.1/x", "database number 'x'"),
        ("redis://127.0.0.1/0?pool=0", "pool '0'"),
        ("redis://127.0.0.1/0?colour=red", "unknown parameter 'colour'"),
        ("redis://127.0.0.1/0?socket=redis.sock", "socket 'redis.sock'"),
        ("redis://u:%zz@127.0.0.1", "percent-encoding"),
    ])
    func rejectsInvalidURLs(url: String, problem: String) {
        do {
            _ = try RedisConfiguration(url: url)
            Issue.record("\(url) was accepted")
        } catch let RedisError.invalidURL(message) {
            #expect(message.contains(problem), "\(message)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func scriptSHA1MatchesRedis() {
        // Values as Redis's SCRIPT LOAD reports them.
        #expect(RedisScript("").sha1 == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(RedisScript("return 1").sha1 == "e0e1f9fabfc9d4800c877a703b823ac0578ff8db")
        #expect(SHA1.hexDigest(Array("The quick brown fox jumps over the lazy dog".utf8)) == "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12")
        #expect(SHA1.hexDigest(Array(repeating: UInt8(ascii: "a"), count: 1000)) == "291e9a6c66994949b57ba5e650361e98fc36b1ba")
    }

    @Test func encodesCommandsBinarySafe() {
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        RedisCommand("SET", "k", [0, 13, 10, 255] as [UInt8]).encode(into: &buffer)
        #expect(Array(buffer.readableBytesView) == Array("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\n".utf8) + [0, 13, 10, 255] + [13, 10])
    }

    /// Every kind of argument is written into the command's one buffer as the bulk string its
    /// bytes make, and reads back as the same arguments.
    @Test func everyArgumentKindEncodesAsItsBytes() {
        let command = RedisCommand(
            "eval", "é", "key"[...], 42, Int64(-7), UInt64(18_446_744_073_709_551_615), 1.5, Double.infinity,
            [1, 2] as [UInt8], ByteBuffer(string: "buf"), RESPConcatenation("sb:", "gw:", "history:", "chat:1"), RESPConcatenation("", ""))
        let expected: [[UInt8]] = [
            "eval", "é", "key", "42", "-7", "18446744073709551615", "1.5", "+inf", "\u{1}\u{2}", "buf", "sb:gw:history:chat:1", "",
        ].map { Array($0.utf8) }
        #expect(command.arguments == expected)
        #expect(command.name == "EVAL")
        var buffer = ByteBuffer()
        command.encode(into: &buffer)
        #expect(String(buffer: buffer).hasPrefix("*12\r\n$4\r\neval\r\n$2\r\né\r\n$3\r\nkey\r\n$2\r\n42\r\n"))
        #expect(String(buffer: buffer).hasSuffix("$20\r\nsb:gw:history:chat:1\r\n$0\r\n\r\n"))
        #expect(RedisCommand(rawArguments: expected).arguments == expected)
    }

    @Test func readsRepliesAcrossPartialFeeds() throws {
        let reader = HiredisReplyReader()
        let wire = Array("*3\r\n+OK\r\n$-1\r\n*2\r\n:42\r\n-ERR bad\r\n$4\r\na\r\nb\r\n".utf8)
        var replies: [RESPValue] = []
        for byte in wire {
            try reader.feed(ByteBuffer(bytes: [byte]))
            while let reply = try reader.next() { replies.append(reply) }
        }
        #expect(replies == [
            .array([.simpleString("OK"), .null, .array([.integer(42), .error("ERR bad")])]),
            .bulkString(Array("a\r\nb".utf8)),
        ])
        try reader.feed(ByteBuffer(string: "?nonsense\r\n"))
        #expect(throws: RedisError.self) { try reader.next() }
    }

    @Test func replyConveniences() {
        #expect(RESPValue.bulkString(Array("12".utf8)).int == 12)
        #expect(RESPValue.bulkString(Array("1.5".utf8)).double == 1.5)
        #expect(RESPValue.simpleString("OK").string == "OK")
        #expect(RESPValue.null.isNull)
        #expect(RESPValue.integer(3).string == nil)
    }
}

/// No error about a Redis URL repeats the password in it.
@Suite struct RedisURLSecrecyTests {
    @Test func anInvalidURLsErrorDoesNotCarryItsPassword() {
        for url in ["redis://user:hunter2-secret@:6379/0", "redis://:hunter2-secret@[::1/0", "redis://:hunter2-secret@host:99999/0", "redis:/:hunter2-secret@host"] {
            do {
                _ = try RedisConfiguration(url: url)
                Issue.record("\(url) was accepted")
            } catch {
                #expect(!"\(error)".contains("hunter2"), "\(error)")
            }
        }
        #expect(RedisConfiguration.redacted("redis://u:p4ss@h:1/0") == "redis://u:***@h:1/0")
        #expect(RedisConfiguration.redacted("redis://h:1/0") == "redis://h:1/0")
    }
}
