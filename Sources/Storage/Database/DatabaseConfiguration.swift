import Foundation

/// Where and how to connect: parsed from `mariadb://user:pass@host:port/db?pool=N[&socket=/path][&ssl=true&ssl_ca=/path]`.
public struct DatabaseConfiguration: Sendable, Hashable {
    /// `127.0.0.1` for TCP; Connector/C treats `localhost` as the Unix socket.
    public var host: String
    public var port: Int
    /// The server's Unix socket, used instead of host:port (on one machine it skips the TCP stack
    /// on both sides of every statement). MariaDB then sees the client as `user@localhost`.
    public var socketPath: String?
    public var user: String
    public var password: String
    public var database: String
    /// Most connections open at once; also the size of the database thread pool.
    public var poolSize: Int
    /// How long `acquire` waits for a free connection before failing with `.poolTimeout`.
    public var acquireTimeout: Duration
    public var connectTimeoutSeconds: Int
    /// An idle connection unused for longer than this is pinged before it is handed out.
    public var healthCheckAfterIdle: Duration
    /// Prepared statements kept per connection.
    public var statementCacheCapacity: Int
    /// TLS to the server (managed MariaDB services); nil for a plain connection.
    public var tls: DatabaseTLS?

    public static let defaultPort = 3306
    public static let defaultPoolSize = 8

    public init(
        host: String = "127.0.0.1", port: Int = defaultPort, user: String, password: String = "", database: String,
        poolSize: Int = defaultPoolSize, acquireTimeout: Duration = .seconds(10), connectTimeoutSeconds: Int = 5,
        healthCheckAfterIdle: Duration = .seconds(30), statementCacheCapacity: Int = 128, socketPath: String? = nil
    ) {
        self.socketPath = socketPath
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.poolSize = poolSize
        self.acquireTimeout = acquireTimeout
        self.connectTimeoutSeconds = connectTimeoutSeconds
        self.healthCheckAfterIdle = healthCheckAfterIdle
        self.statementCacheCapacity = statementCacheCapacity
    }

    /// Parses `mariadb://` or `mysql://` URLs; user, password and database name are percent-decoded.
    /// Query options: `pool` (1...1024), `acquire_timeout` and `connect_timeout` (seconds), `socket`
    /// (an absolute path); TLS with `ssl=true` and `ssl_ca`, `ssl_cert`, `ssl_key` (absolute paths)
    /// and `ssl_verify=false` (no certificate check: for testing only). Any `ssl_*` implies `ssl=true`.
    public init(url string: String) throws(DatabaseConfigurationError) {
        guard let schemeEnd = string.range(of: "://") else { throw .malformed(string, "expected scheme://") }
        let scheme = string[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "mariadb" || scheme == "mysql" else { throw .unsupportedScheme(scheme) }
        guard let components = URLComponents(string: string) else { throw .malformed(string, "not a valid URL") }
        guard let host = components.host, !host.isEmpty else { throw .missingHost }
        guard let user = components.percentEncodedUser.flatMap({ $0.removingPercentEncoding }), !user.isEmpty else {
            throw .missingUser
        }
        let password = components.percentEncodedPassword.map { $0.removingPercentEncoding ?? $0 } ?? ""
        var path = components.percentEncodedPath
        if path.hasPrefix("/") { path.removeFirst() }
        guard !path.isEmpty, !path.contains("/"), let database = path.removingPercentEncoding, !database.isEmpty else {
            throw .missingDatabase
        }
        let port: Int
        if let p = components.port {
            guard (1...65535).contains(p) else { throw .invalidPort(String(p)) }
            port = p
        } else {
            port = Self.defaultPort
        }
        self.init(host: host, port: port, user: user, password: password, database: database)
        for item in components.queryItems ?? [] {
            let value = item.value ?? ""
            switch item.name {
            case "pool", "pool_size":
                guard let n = Int(value), (1...1024).contains(n) else { throw .invalidOption(item.name, value) }
                poolSize = n
            case "acquire_timeout":
                guard let s = Double(value), s > 0 else { throw .invalidOption(item.name, value) }
                acquireTimeout = .milliseconds(Int64(s * 1000))
            case "connect_timeout":
                guard let s = Int(value), s > 0 else { throw .invalidOption(item.name, value) }
                connectTimeoutSeconds = s
            case "socket":
                guard value.hasPrefix("/") else { throw .invalidOption(item.name, value) }
                socketPath = value
            case "ssl", "tls":
                guard let on = Bool(value) else { throw .invalidOption(item.name, value) }
                tls = on ? (tls ?? DatabaseTLS()) : nil
            case "ssl_ca", "ssl_cert", "ssl_key":
                guard value.hasPrefix("/") else { throw .invalidOption(item.name, value) }
                var settings = tls ?? DatabaseTLS()
                switch item.name {
                case "ssl_ca": settings.caFile = value
                case "ssl_cert": settings.certificateFile = value
                default: settings.keyFile = value
                }
                tls = settings
            case "ssl_verify":
                guard let verify = Bool(value) else { throw .invalidOption(item.name, value) }
                var settings = tls ?? DatabaseTLS()
                settings.verify = verify
                tls = settings
            default:
                throw .unknownOption(item.name)
            }
        }
        if let tls, (tls.certificateFile == nil) != (tls.keyFile == nil) { throw .invalidOption("ssl_cert", "needs ssl_key (and the other way round)") }
    }

    /// Where connections go, for errors and logs.
    public var endpoint: String { socketPath ?? "\(host):\(port)" }
}

/// Why a database URL was refused.
public enum DatabaseConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    case malformed(String, String)
    case unsupportedScheme(String)
    case missingHost
    case missingUser
    case missingDatabase
    case invalidPort(String)
    case invalidOption(String, String)
    case unknownOption(String)

    public var description: String {
        switch self {
        case .malformed(_, let why): "database URL is malformed: \(why) (expected mariadb://user:password@host:port/database)"
        case .unsupportedScheme(let s): "database URL scheme `\(s)` is not supported (use mariadb:// or mysql://)"
        case .missingHost: "database URL has no host"
        case .missingUser: "database URL has no user"
        case .missingDatabase: "database URL has no database name (mariadb://user:password@host:port/database)"
        case .invalidPort(let p): "database URL port `\(p)` is not in 1...65535"
        case .invalidOption(let name, let value): "database URL option `\(name)` has an invalid value `\(value)`"
        case .unknownOption(let name): "database URL option `\(name)` is unknown (known: pool, acquire_timeout, connect_timeout, socket, ssl, ssl_ca, ssl_cert, ssl_key, ssl_verify)"
        }
    }
}

/// How a TLS connection to MariaDB checks the server and proves itself (Connector/C's TLS options).
public struct DatabaseTLS: Sendable, Hashable {
    /// PEM file of the CA certificates to trust; nil trusts the system's.
    public var caFile: String?
    /// PEM client certificate and its key, for accounts that require one (`REQUIRE X509`).
    public var certificateFile: String?
    public var keyFile: String?
    /// Check the server's certificate chain and host name. Off only for testing.
    public var verify: Bool

    public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, verify: Bool = true) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.verify = verify
    }
}
