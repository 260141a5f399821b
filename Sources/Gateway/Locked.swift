/// `Locked`: a mutex in a box, for locks kept in arrays.
import Synchronization

/// A mutex in a box, so locks can live in arrays (Mutex itself cannot be copied).
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) {
        mutex = Mutex(value)
    }

    func withLock<Result>(_ body: (inout sending Value) throws -> sending Result) rethrows -> sending Result {
        try mutex.withLock(body)
    }
}
