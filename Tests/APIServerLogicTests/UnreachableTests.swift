import RedisClient
@testable import Storage
import Testing

@testable import APIServer

/// While MariaDB or Redis is down or restarting, the api answers a 503 `unavailable` the client can
/// retry, never a 500 (scripts/faults found MariaDB restarts answered 500 `internal_error`).
@Suite("Unreachable dependencies")
struct UnreachableTests {
    @Test(arguments: [DatabaseError.Code.connectFailed, .connectionLost, .poolTimeout])
    func aDatabaseThatCannotBeReachedIsAnOutage(code: DatabaseError.Code) {
        let error = DatabaseError(code: code, errorNumber: 2002, sqlState: "HY000", message: "Can't connect to server")
        #expect(Unreachable.dependency(of: error) == "the database")
    }

    /// MariaDB's own numbers, as the client reports them, for contention that outlasted the retries.
    @Test(arguments: [(UInt32(1213), "40001"), (1205, "HY000")])
    func contentionThatOutlastedTheRetriesIsAnOutage(number: UInt32, sqlState: String) {
        let error = DatabaseError(errorNumber: number, sqlState: sqlState, message: "lock")
        #expect(Unreachable.dependency(of: error) == "the database")
    }

    @Test func otherDatabaseErrorsAreNot() {
        #expect(Unreachable.dependency(of: DatabaseError(code: .duplicateKey, errorNumber: 1062, sqlState: "23000", message: "dup")) == nil)
        #expect(Unreachable.dependency(of: DatabaseError(code: .server, errorNumber: 1064, sqlState: "42000", message: "syntax")) == nil)
    }

    @Test func redisGoneOrLoadingIsAnOutage() {
        for error in [RedisError.connectionClosed, .unavailable("connection refused"), .timeout, .server("LOADING Redis is loading the dataset in memory")] {
            #expect(Unreachable.dependency(of: error) == "Redis", "\(error)")
        }
        #expect(Unreachable.dependency(of: RedisError.server("WRONGTYPE Operation against a key")) == nil)
        #expect(Unreachable.dependency(of: RedisError.protocolError("bad reply")) == nil)
        #expect(Unreachable.dependency(of: CancellationError()) == nil)
    }
}
