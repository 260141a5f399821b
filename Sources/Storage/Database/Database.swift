import Logging
import NIOPosix

/// Something statements can run on: the pooled `Database`, or one `DatabaseSession` (a transaction).
public protocol DatabaseExecutor: Sendable {
    /// Runs a statement that returns rows.
    func query(_ sql: String, _ values: [DatabaseValue]) async throws -> [Row]
    /// Runs a statement that changes rows.
    @discardableResult
    func execute(_ sql: String, _ values: [DatabaseValue]) async throws -> ExecuteResult
}

extension DatabaseExecutor {
    public func query(_ sql: String) async throws -> [Row] { try await query(sql, []) }

    @discardableResult
    public func execute(_ sql: String) async throws -> ExecuteResult { try await execute(sql, []) }

    /// The first row, or nil.
    public func queryFirst(_ sql: String, _ values: [DatabaseValue] = []) async throws -> Row? {
        try await query(sql, values).first
    }
}

/// A pool of MariaDB connections whose blocking Connector/C calls run on a thread pool of their own
/// (one thread per connection), never on the cooperative pool or an event loop.
///
/// Statements outside a transaction that fail because the connection was lost (server gone away,
/// connection killed) are retried once on a fresh connection.
public final class Database: DatabaseExecutor {
    public let configuration: DatabaseConfiguration
    let threadPool: NIOThreadPool
    let pool: ConnectionPool
    let logger: Logger

    private init(configuration: DatabaseConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        // mysql_server_init before any thread touches the library.
        precondition(MariaDBLibrary.initialized, "mysql_server_init failed")
        threadPool = NIOThreadPool(numberOfThreads: configuration.poolSize)
        threadPool.start()
        pool = ConnectionPool(configuration: configuration, threadPool: threadPool, logger: logger)
    }

    /// Starts the thread pool and opens a first connection, so a wrong URL or a server that is down
    /// fails here rather than on the first query.
    public static func connect(
        _ configuration: DatabaseConfiguration, logger: Logger = Logger(label: "switchboard.storage")
    ) async throws -> Database {
        let database = Database(configuration: configuration, logger: logger)
        do {
            let connection = try await database.pool.acquire()
            database.pool.release(connection)
        } catch {
            await database.shutdown()
            throw error
        }
        return database
    }

    /// Closes the connections and stops the thread pool. Calls after this fail with `.closed`.
    public func shutdown() async {
        await pool.shutdown()
        try? await threadPool.shutdownGracefully()
    }

    /// Connections currently open.
    public var openConnections: Int { pool.openConnections }

    public func query(_ sql: String, _ values: [DatabaseValue]) async throws -> [Row] {
        try await run { try $0.run(sql, values).rows }
    }

    @discardableResult
    public func execute(_ sql: String, _ values: [DatabaseValue]) async throws -> ExecuteResult {
        try await run { try $0.run(sql, values).result }
    }

    /// True when a connection answers a trivial query (for health checks).
    public func isHealthy() async -> Bool {
        (try? await query("SELECT 1")) != nil
    }

    /// Runs `body` inside START TRANSACTION … COMMIT on one connection; rolls back when `body` throws.
    /// A transaction InnoDB picked as a deadlock's victim has been rolled back whole, so it runs
    /// again, up to `deadlockAttempts` times in all, after a short random pause: `body` must touch
    /// nothing but the database. Nothing else is retried: a lost connection fails the transaction.
    @discardableResult
    public func transaction<T>(_ body: (DatabaseSession) async throws -> T) async throws -> T {
        var attempt = 1
        while true {
            do {
                return try await transactionOnce(body)
            } catch let error as DatabaseError where error.code == .deadlock && attempt < Self.deadlockAttempts {
                attempt += 1
                try await Task.sleep(for: .milliseconds(Int.random(in: 1...(10 * attempt))))
            }
        }
    }

    /// How many times `transaction` runs a body that keeps losing deadlocks.
    public static let deadlockAttempts = 4

    private func transactionOnce<T>(_ body: (DatabaseSession) async throws -> T) async throws -> T {
        let session = try await beginTransaction()
        defer { pool.release(session.connection) }
        let value: T
        do {
            value = try await body(session)
        } catch {
            await session.rollbackQuietly()
            throw error
        }
        try await session.commit()
        return value
    }

    /// START TRANSACTION has not done anything yet when it finds the connection lost, so it is retried once.
    private func beginTransaction() async throws -> DatabaseSession {
        var retried = false
        while true {
            let connection = try await pool.acquire()
            let session = DatabaseSession(connection: connection, threadPool: threadPool)
            do {
                try await session.begin()
                return session
            } catch let error as DatabaseError where error.isConnectionLost && !retried {
                pool.release(connection)
                retried = true
            } catch {
                pool.release(connection)
                throw error
            }
        }
    }

    /// Runs `body` on one connection kept for its whole duration (session state such as GET_LOCK).
    @discardableResult
    public func withSession<T>(_ body: (DatabaseSession) async throws -> T) async throws -> T {
        let connection = try await pool.acquire()
        let session = DatabaseSession(connection: connection, threadPool: threadPool)
        defer { pool.release(connection) }
        return try await body(session)
    }

    private func run<T: Sendable>(_ work: @escaping @Sendable (MariaDBConnection) throws -> T) async throws -> T {
        var retried = false
        while true {
            let connection = try await pool.acquire()
            do {
                let value = try await threadPool.runIfActive {
                    MariaDBLibrary.prepareCurrentThread()
                    return try work(connection)
                }
                pool.release(connection)
                return value
            } catch let error as DatabaseError where error.isConnectionLost && !retried {
                pool.release(connection)  // broken: discarded and replaced
                retried = true
                logger.warning(
                    "database connection lost; retrying on a new connection",
                    metadata: ["connection_id": "\(connection.serverConnectionID)", "error": "\(error)"])
            } catch {
                pool.release(connection)
                throw error
            }
        }
    }
}

/// Statements on one leased connection, in order. Not for concurrent use.
public final class DatabaseSession: DatabaseExecutor, @unchecked Sendable {
    let connection: MariaDBConnection
    private let threadPool: NIOThreadPool

    init(connection: MariaDBConnection, threadPool: NIOThreadPool) {
        self.connection = connection
        self.threadPool = threadPool
    }

    /// MariaDB's id of the underlying connection (`CONNECTION_ID()`).
    public var serverConnectionID: Int64 { Int64(connection.serverConnectionID) }

    public func query(_ sql: String, _ values: [DatabaseValue]) async throws -> [Row] {
        try await run { try $0.run(sql, values).rows }
    }

    @discardableResult
    public func execute(_ sql: String, _ values: [DatabaseValue]) async throws -> ExecuteResult {
        try await run { try $0.run(sql, values).result }
    }

    /// Runs a statement through the text protocol (DDL and statements that cannot be prepared).
    @discardableResult
    public func executeText(_ sql: String) async throws -> Int64 {
        try await run { try $0.executeText(sql) }
    }

    func begin() async throws { try await executeText("START TRANSACTION") }
    func commit() async throws { try await executeText("COMMIT") }

    /// A connection whose rollback failed may still be inside the transaction: it is not reused.
    func rollbackQuietly() async {
        do {
            try await executeText("ROLLBACK")
        } catch {
            connection.markBroken()
        }
    }

    private func run<T: Sendable>(_ work: @escaping @Sendable (MariaDBConnection) throws -> T) async throws -> T {
        let connection = self.connection
        return try await threadPool.runIfActive {
            MariaDBLibrary.prepareCurrentThread()
            return try work(connection)
        }
    }
}
