import CMariaDB
import Foundation
import NIOPosix

/// One Connector/C connection (`MYSQL*`) with its prepared-statement cache.
///
/// Every method blocks and must run on the database thread pool. The pool hands a connection to one
/// caller at a time, which is what makes the `@unchecked Sendable` hold.
final class MariaDBConnection: @unchecked Sendable {
    private let mysql: UnsafeMutablePointer<MYSQL>
    private var statements: [String: UnsafeMutablePointer<MYSQL_STMT>] = [:]
    private let statementCacheCapacity: Int
    /// MariaDB's id for this connection (`CONNECTION_ID()`), the one `KILL` takes.
    let serverConnectionID: UInt
    /// Set when the connection can no longer be trusted (lost, or a client-side protocol error).
    private(set) var isBroken = false
    /// When the connection last finished a call; used to decide when to ping.
    var lastUsed: ContinuousClock.Instant = .now

    private init(mysql: UnsafeMutablePointer<MYSQL>, statementCacheCapacity: Int) {
        self.mysql = mysql
        self.statementCacheCapacity = statementCacheCapacity
        self.serverConnectionID = mysql_thread_id(mysql)
    }

    private var isClosed = false

    deinit { close() }

    /// Frees the statements and closes the connection (sends COM_QUIT when it is still up).
    func close() {
        guard !isClosed else { return }
        isClosed = true
        isBroken = true
        for statement in statements.values { mysql_stmt_close(statement) }
        statements = [:]
        mysql_close(mysql)
    }

    /// Opens a TCP connection (or one over `socketPath`) in utf8mb4 with the session in UTC.
    static func connect(_ configuration: DatabaseConfiguration) throws(DatabaseError) -> MariaDBConnection {
        MariaDBLibrary.prepareCurrentThread()
        guard let mysql = mysql_init(nil) else {
            throw DatabaseError(code: .connectFailed, message: "mysql_init failed (out of memory)")
        }
        _ = mysql_options(mysql, MYSQL_SET_CHARSET_NAME, "utf8mb4")
        var connectTimeout = UInt32(configuration.connectTimeoutSeconds)
        _ = mysql_options(mysql, MYSQL_OPT_CONNECT_TIMEOUT, &connectTimeout)
        var reconnect: my_bool = 0  // reconnecting is the pool's job: a silent reconnect would lose session state
        _ = mysql_options(mysql, MYSQL_OPT_RECONNECT, &reconnect)
        if let tls = configuration.tls {
            // Enforced: a server that offers no TLS is refused rather than spoken to in the clear.
            var enforce: my_bool = 1
            _ = mysql_options(mysql, MYSQL_OPT_SSL_ENFORCE, &enforce)
            if let ca = tls.caFile { _ = mysql_options(mysql, MYSQL_OPT_SSL_CA, ca) }
            if let certificate = tls.certificateFile, let key = tls.keyFile {
                _ = mysql_options(mysql, MYSQL_OPT_SSL_CERT, certificate)
                _ = mysql_options(mysql, MYSQL_OPT_SSL_KEY, key)
            }
            var verify: my_bool = tls.verify ? 1 : 0
            _ = mysql_options(mysql, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify)
        }
        guard
            mysql_real_connect(
                // Connector/C takes the socket only for the host `localhost`.
                mysql, configuration.socketPath == nil ? configuration.host : "localhost", configuration.user, configuration.password,
                configuration.database, UInt32(configuration.port), configuration.socketPath, 0) != nil
        else {
            let error = DatabaseError(
                code: .connectFailed, errorNumber: mysql_errno(mysql), sqlState: String(cString: mysql_sqlstate(mysql)),
                message: "cannot connect to \(configuration.endpoint)/\(configuration.database) as "
                    + "\(configuration.user): \(String(cString: mysql_error(mysql)))")
            mysql_close(mysql)
            throw error
        }
        let connection = MariaDBConnection(mysql: mysql, statementCacheCapacity: configuration.statementCacheCapacity)
        try connection.executeText("SET time_zone = '+00:00'")
        return connection
    }

    func markBroken() { isBroken = true }

    /// Round trip to check the server still answers.
    func ping() -> Bool {
        let alive = mysql_ping(mysql) == 0
        if !alive { isBroken = true }
        return alive
    }

    // MARK: - Text protocol (statements that need no parameters: session settings, DDL)

    @discardableResult
    func executeText(_ sql: String) throws(DatabaseError) -> Int64 {
        let rc = sql.withCString { mysql_real_query(mysql, $0, UInt(strlen($0))) }
        if rc != 0 { throw connectionError() }
        if let result = mysql_store_result(mysql) {
            mysql_free_result(result)
        } else if mysql_field_count(mysql) != 0 {
            throw connectionError()
        }
        lastUsed = .now
        return Int64(bitPattern: mysql_affected_rows(mysql))
    }

    // MARK: - Prepared statements

    /// Prepares (or reuses) `sql`, binds `parameters`, executes, and reads every row.
    func run(_ sql: String, _ parameters: [DatabaseValue]) throws(DatabaseError) -> (rows: [Row], result: ExecuteResult) {
        defer { lastUsed = .now }
        let statement = try prepared(sql)
        let expected = Int(mysql_stmt_param_count(statement))
        guard expected == parameters.count else {
            throw DatabaseError(
                code: .parameterCount, message: "statement takes \(expected) parameters, got \(parameters.count): \(sql)")
        }
        do {
            try ParameterBinding.withBinds(parameters) { (binds) throws(DatabaseError) in
                if expected > 0, mysql_stmt_bind_param(statement, binds) != 0 { throw statementError(statement) }
                if mysql_stmt_execute(statement) != 0 { throw statementError(statement) }
            }
            let rows = try fetchRows(statement)
            let result = ExecuteResult(
                affectedRows: Int64(bitPattern: mysql_stmt_affected_rows(statement)),
                lastInsertID: Int64(bitPattern: mysql_stmt_insert_id(statement)))
            return (rows, result)
        } catch {
            // A server error (duplicate key, ...) leaves the statement reusable; a client-side or decoding
            // error may leave it mid-result, where it would answer "commands out of sync": start it afresh.
            if error.code == .decoding || (2000..<3000).contains(error.errorNumber) { forget(sql) }
            throw error
        }
    }

    private func prepared(_ sql: String) throws(DatabaseError) -> UnsafeMutablePointer<MYSQL_STMT> {
        if let statement = statements[sql] { return statement }
        guard let statement = mysql_stmt_init(mysql) else { throw connectionError() }
        let rc = sql.withCString { mysql_stmt_prepare(statement, $0, UInt(strlen($0))) }
        if rc != 0 {
            let error = statementError(statement)
            mysql_stmt_close(statement)
            throw error
        }
        var updateMaxLength: my_bool = 1  // so store_result reports the longest value of each column
        _ = mysql_stmt_attr_set(statement, STMT_ATTR_UPDATE_MAX_LENGTH, &updateMaxLength)
        if statements.count >= statementCacheCapacity, let victim = statements.first {
            mysql_stmt_close(victim.value)
            statements.removeValue(forKey: victim.key)
        }
        statements[sql] = statement
        return statement
    }

    private func forget(_ sql: String) {
        if let statement = statements.removeValue(forKey: sql) { mysql_stmt_close(statement) }
    }

    private func fetchRows(_ statement: UnsafeMutablePointer<MYSQL_STMT>) throws(DatabaseError) -> [Row] {
        let columnCount = Int(mysql_stmt_field_count(statement))
        guard columnCount > 0 else { return [] }
        if mysql_stmt_store_result(statement) != 0 { throw statementError(statement) }
        defer { mysql_stmt_free_result(statement) }
        guard let fields = statement.pointee.fields else {
            throw DatabaseError(code: .decoding, message: "result set without field metadata")
        }
        let output = ResultBinding(fields: fields, count: columnCount)
        defer { output.deallocate() }
        if mysql_stmt_bind_result(statement, output.binds) != 0 { throw statementError(statement) }
        var rows: [Row] = []
        rows.reserveCapacity(Int(mysql_stmt_num_rows(statement)))
        while true {
            let rc = mysql_stmt_fetch(statement)
            if rc == MYSQL_NO_DATA { break }
            if rc != 0 && rc != MYSQL_DATA_TRUNCATED { throw statementError(statement) }
            rows.append(Row(columns: output.columns, values: try output.currentValues(statement)))
        }
        return rows
    }

    // MARK: - Errors

    private func connectionError() -> DatabaseError {
        record(
            DatabaseError(
                errorNumber: mysql_errno(mysql), sqlState: String(cString: mysql_sqlstate(mysql)),
                message: String(cString: mysql_error(mysql))))
    }

    private func statementError(_ statement: UnsafeMutablePointer<MYSQL_STMT>) -> DatabaseError {
        record(
            DatabaseError(
                errorNumber: mysql_stmt_errno(statement), sqlState: String(cString: mysql_stmt_sqlstate(statement)),
                message: String(cString: mysql_stmt_error(statement))))
    }

    /// Client-library errors (2000-2999) and lost connections leave the connection unusable.
    private func record(_ error: DatabaseError) -> DatabaseError {
        if error.isConnectionLost || (2000..<3000).contains(error.errorNumber) { isBroken = true }
        return error
    }
}

/// Process-wide Connector/C set-up.
enum MariaDBLibrary {
    /// `mysql_library_init` is a macro; `mysql_server_init` is what it expands to. Runs once.
    static let initialized: Bool = mysql_server_init(0, nil, nil) == 0

    /// Marks a thread as registered with Connector/C; released (and `mysql_thread_end` called) when the thread exits.
    final class ThreadRegistration: Sendable {
        init() { _ = mysql_thread_init() }
        deinit { mysql_thread_end() }
    }

    static let registration = ThreadSpecificVariable<ThreadRegistration>()

    /// Call at the top of every job on a database thread, before any Connector/C call.
    static func prepareCurrentThread() {
        precondition(initialized, "mysql_server_init failed")
        if registration.currentValue == nil { registration.currentValue = ThreadRegistration() }
    }
}
