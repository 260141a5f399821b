/// An error from the database layer, carrying the MariaDB error number and SQLSTATE when the server
/// or the client library reported one.
public struct DatabaseError: Error, Sendable, CustomStringConvertible {
    /// A growable error category.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// ER_DUP_ENTRY (1062): a UNIQUE key already holds the value.
        public static let duplicateKey = Code("duplicate_key")
        /// ER_NO_REFERENCED_ROW_2 / ER_ROW_IS_REFERENCED_2 (1452 / 1451).
        public static let foreignKeyViolation = Code("foreign_key_violation")
        /// ER_LOCK_DEADLOCK (1213): InnoDB chose this transaction as a deadlock's victim and rolled
        /// it back; running it again is safe.
        public static let deadlock = Code("deadlock")
        /// ER_LOCK_WAIT_TIMEOUT (1205): a row lock was not granted within `innodb_lock_wait_timeout`.
        public static let lockWaitTimeout = Code("lock_wait_timeout")
        /// The server went away or the connection was killed (2006, 2013, 2055, 1927, 4031, 1053).
        public static let connectionLost = Code("connection_lost")
        /// Connecting failed (wrong credentials, server down, ...).
        public static let connectFailed = Code("connect_failed")
        /// Any other error the server or Connector/C reported.
        public static let server = Code("server")
        /// No connection became free within the acquire timeout.
        public static let poolTimeout = Code("pool_timeout")
        /// The database was shut down.
        public static let closed = Code("closed")
        /// A result did not have the expected shape or type.
        public static let decoding = Code("decoding")
        /// A statement was called with the wrong number of parameters.
        public static let parameterCount = Code("parameter_count")
        /// A migration could not be applied.
        public static let migration = Code("migration")
    }

    public let code: Code
    /// MariaDB / Connector/C error number (`mysql_errno`), 0 when not from MariaDB.
    public let errorNumber: UInt32
    /// Five-character SQLSTATE, empty when not from MariaDB.
    public let sqlState: String
    public let message: String

    public init(code: Code, errorNumber: UInt32 = 0, sqlState: String = "", message: String) {
        self.code = code
        self.errorNumber = errorNumber
        self.sqlState = sqlState
        self.message = message
    }

    /// The error a MariaDB error number maps to.
    init(errorNumber: UInt32, sqlState: String, message: String) {
        let code: Code =
            switch errorNumber {
            case 1062: .duplicateKey
            case 1451, 1452: .foreignKeyViolation
            case 1213: .deadlock
            case 1205: .lockWaitTimeout
            case _ where Self.connectionLostNumbers.contains(errorNumber): .connectionLost
            default: .server
            }
        self.init(code: code, errorNumber: errorNumber, sqlState: sqlState, message: message)
    }

    /// CR_SERVER_GONE_ERROR, CR_SERVER_LOST, CR_SERVER_LOST_EXTENDED, ER_CONNECTION_KILLED,
    /// ER_CLIENT_INTERACTION_TIMEOUT, ER_SERVER_SHUTDOWN.
    static let connectionLostNumbers: Set<UInt32> = [2006, 2013, 2055, 1927, 4031, 1053]

    public var isDuplicateKey: Bool { code == .duplicateKey }
    public var isConnectionLost: Bool { code == .connectionLost }

    public var description: String {
        errorNumber == 0 ? "\(code): \(message)" : "\(code) (MariaDB \(errorNumber), SQLSTATE \(sqlState)): \(message)"
    }
}
