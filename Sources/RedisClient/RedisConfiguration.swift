import NIOCore

/// Where and how to reach Redis. Built in code or from a `redis://` URL.
public struct RedisConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// A Unix socket to connect to instead of host:port (Redis's `unixsocket`): on one machine it
    /// skips the TCP stack on both sides of every round trip.
    public var socketPath: String?
    public var password: String?
    /// ACL user name; with a password the handshake sends `AUTH user password`.
    public var username: String?
    /// Database number selected on every new connection.
    public var database: Int
    /// Prepended by the typed helpers to every key, script key and pub/sub channel.
    public var keyPrefix: String
    /// Multiplexed connections for ordinary commands.
    public var poolSize: Int
    /// How long a command waits for a connection (with backoff retries) before `.unavailable`.
    public var connectTimeout: TimeAmount
    /// How long a command waits for its reply (default 10 s; nil waits for ever). Blocking reads
    /// add their BLOCK time. A bound by default: a reply that never comes (a wedged server, a
    /// half-open connection) fails one command instead of hanging its caller for ever.
    public var commandTimeout: TimeAmount?
    /// At most this many idle connections for blocking commands are kept for reuse (each is
    /// closed after a minute unused). Set it to the number of concurrent blocking readers.
    public var maxIdleBlockingConnections: Int
    /// TLS to the server (`rediss://`, managed Redis services); nil for plain TCP.
    public var tls: RedisTLS?

    public init(
        host: String = "127.0.0.1",
        port: Int = 6379,
        password: String? = nil,
        username: String? = nil,
        database: Int = 0,
        keyPrefix: String = "sb:",
        poolSize: Int = 4,
        connectTimeout: TimeAmount = .seconds(5),
        commandTimeout: TimeAmount? = .seconds(10),
        maxIdleBlockingConnections: Int = 16,
        socketPath: String? = nil
    ) {
        self.host = host
        self.port = port
        self.socketPath = socketPath
        self.password = password
        self.username = username
        self.database = database
        self.keyPrefix = keyPrefix
        self.poolSize = max(1, poolSize)
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.maxIdleBlockingConnections = max(0, maxIdleBlockingConnections)
    }

    /// Parses `redis://[user[:password]@]host[:port][/db][?prefix=sb:&pool=4&connect_timeout=5&command_timeout=2&socket=/path]`.
    /// User and password may be percent-encoded; timeouts are in seconds (decimals allowed); with
    /// `socket` the connection goes to that Unix socket and host and port only name the server in logs.
    /// `rediss://` is the same over TLS, with `ca=/path.pem` (else the system's roots),
    /// `cert=/path.pem&key=/path.pem` (a client certificate), `server_name=` (else the host) and
    /// `verify=false` (no certificate check: for testing only).
    /// `url` with the password of its user part replaced by `***` (for errors and logs).
    public static func redacted(_ url: String) -> String {
        guard let schemeEnd = url.firstRange(of: "://") else { return url.contains("@") ? "***" : url }
        let rest = url[schemeEnd.upperBound...]
        guard let at = rest.lastIndex(of: "@") else { return url }
        let userInfo = rest[..<at]
        guard let colon = userInfo.firstIndex(of: ":") else { return url }
        return String(url[..<schemeEnd.upperBound]) + userInfo[..<colon] + ":***" + rest[at...]
    }

    public init(url: String) throws {
        self.init()
        // What errors may quote of the URL: never its password.
        let shown = Self.redacted(url)
        let schemeSeparator = "://"
        guard let schemeEnd = url.firstRange(of: schemeSeparator) else {
            throw RedisError.invalidURL("missing scheme (expected redis://host:port/db) in '\(shown)'")
        }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "redis" || scheme == "rediss" else {
            throw RedisError.invalidURL("unsupported scheme '\(scheme)' (expected redis or rediss)")
        }
        if scheme == "rediss" { tls = RedisTLS() }
        var rest = Substring(url[schemeEnd.upperBound...])

        var query: Substring?
        if let q = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        var path: Substring?
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                let user = try Self.percentDecoded(userInfo[..<colon], what: "user name")
                username = user.isEmpty ? nil : user
                password = try Self.percentDecoded(userInfo[userInfo.index(after: colon)...], what: "password")
            } else {
                // redis://secret@host: a lone credential is the password (the default user).
                let single = try Self.percentDecoded(userInfo, what: "password")
                password = single.isEmpty ? nil : single
            }
        }

        // host[:port], IPv6 literals in brackets.
        var hostPart = rest
        var portPart: Substring?
        if hostPart.hasPrefix("[") {
            guard let close = hostPart.firstIndex(of: "]") else {
                throw RedisError.invalidURL("unterminated IPv6 host in '\(shown)'")
            }
            let after = hostPart[hostPart.index(after: close)...]
            if after.hasPrefix(":") { portPart = after.dropFirst() } else if !after.isEmpty {
                throw RedisError.invalidURL("unexpected '\(after)' after host")
            }
            hostPart = hostPart[hostPart.index(after: hostPart.startIndex)..<close]
        } else if let colon = hostPart.firstIndex(of: ":") {
            portPart = hostPart[hostPart.index(after: colon)...]
            hostPart = hostPart[..<colon]
        }
        guard !hostPart.isEmpty else { throw RedisError.invalidURL("missing host in '\(shown)'") }
        host = String(hostPart)
        if let portPart {
            guard let p = Int(portPart), (1...65535).contains(p) else {
                throw RedisError.invalidURL("invalid port '\(portPart)' (expected 1-65535)")
            }
            port = p
        }

        if let path, !path.isEmpty {
            guard let db = Int(path), db >= 0 else {
                throw RedisError.invalidURL("invalid database number '\(path)' (expected a non-negative integer)")
            }
            database = db
        }

        if let query, !query.isEmpty {
            for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = String(parts[0])
                let value = try Self.percentDecoded(parts.count > 1 ? parts[1] : "", what: "parameter \(name)")
                switch name {
                case "prefix":
                    keyPrefix = value
                case "pool":
                    guard let n = Int(value), n >= 1 else {
                        throw RedisError.invalidURL("invalid pool '\(value)' (expected a positive integer)")
                    }
                    poolSize = n
                case "connect_timeout", "connectTimeout":
                    connectTimeout = try Self.seconds(value, name: name)
                case "command_timeout", "commandTimeout":
                    // 0 turns the bound off.
                    commandTimeout = value == "0" ? nil : try Self.seconds(value, name: name)
                case "db":
                    guard let db = Int(value), db >= 0 else {
                        throw RedisError.invalidURL("invalid database number '\(value)' (expected a non-negative integer)")
                    }
                    database = db
                case "socket":
                    guard value.hasPrefix("/") else {
                        throw RedisError.invalidURL("invalid socket '\(value)' (expected an absolute path)")
                    }
                    socketPath = value
                case "ca", "cert", "key", "server_name", "verify":
                    guard tls != nil else { throw RedisError.invalidURL("'\(name)' is a TLS parameter: use rediss://") }
                    switch name {
                    case "ca": tls?.caFile = try Self.absolutePath(value, name: name)
                    case "cert": tls?.certificateFile = try Self.absolutePath(value, name: name)
                    case "key": tls?.keyFile = try Self.absolutePath(value, name: name)
                    case "server_name": tls?.serverName = value.isEmpty ? nil : value
                    default:
                        guard let verify = Bool(value) else { throw RedisError.invalidURL("invalid verify '\(value)' (expected true or false)") }
                        tls?.verify = verify
                    }
                default:
                    throw RedisError.invalidURL(
                        "unknown parameter '\(name)' (known: prefix, pool, db, connect_timeout, command_timeout, socket; with rediss: ca, cert, key, server_name, verify)")
                }
            }
        }
        if tls != nil, socketPath != nil { throw RedisError.invalidURL("rediss:// cannot use a Unix socket") }
        if let tls, (tls.certificateFile == nil) != (tls.keyFile == nil) {
            throw RedisError.invalidURL("cert and key go together")
        }
    }

    private static func absolutePath(_ value: String, name: String) throws -> String {
        guard value.hasPrefix("/") else { throw RedisError.invalidURL("invalid \(name) '\(value)' (expected an absolute path)") }
        return value
    }

    /// Where connections go, for logs and errors.
    public var endpoint: String { socketPath ?? "\(host):\(port)" }

    private static func seconds(_ value: String, name: String) throws -> TimeAmount {
        guard let s = Double(value), s > 0, s.isFinite else {
            throw RedisError.invalidURL("invalid \(name) '\(value)' (expected seconds > 0)")
        }
        return .nanoseconds(Int64(s * 1_000_000_000))
    }

    private static func percentDecoded(_ text: Substring, what: String) throws -> String {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let h = iterator.next(), let l = iterator.next(),
                    let hi = hexValue(h), let lo = hexValue(l)
                else { throw RedisError.invalidURL("bad percent-encoding in \(what)") }
                bytes.append(hi << 4 | lo)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// How a `rediss://` connection checks the server and proves itself.
public struct RedisTLS: Sendable, Equatable {
    /// PEM file of the CA certificates to trust; nil trusts the system's roots.
    public var caFile: String?
    /// PEM client certificate and its key, for servers that ask for one (`tls-auth-clients yes`).
    public var certificateFile: String?
    public var keyFile: String?
    /// The name the server's certificate must carry; nil means the host of the URL.
    public var serverName: String?
    /// Check the server's certificate chain and name. Off only for testing.
    public var verify: Bool

    public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, serverName: String? = nil, verify: Bool = true) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.serverName = serverName
        self.verify = verify
    }
}
