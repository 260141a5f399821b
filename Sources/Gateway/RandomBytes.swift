/// Random bytes for what every new connection needs (its client ID, the jitter of its first ping, a
/// new channel's epoch): the kernel's randomness, read 256 bytes at a time.
import Glibc
import Synchronization

/// A random number generator whose bytes come from the kernel (`getentropy`, which is `getrandom`)
/// 256 bytes at a time, so a burst of new connections does not make a system call or three for
/// each one (`SystemRandomNumberGenerator` makes one per eight bytes). The bytes are the kernel's
/// own, read ahead, and each is handed out once.
struct RandomBytes: RandomNumberGenerator {
    private static let pool = Mutex(Pool())

    private struct Pool: ~Copyable {
        /// `getentropy`'s most per call.
        static let size = 256
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 8)
        var used = size

        /// The next eight bytes, reading more when these are spent.
        mutating func next() -> UInt64 {
            if used == Self.size {
                if getentropy(bytes.baseAddress, Self.size) != 0 {
                    // Only without the system call (ENOSYS) or with a bad pointer: never here, but
                    // the standard library's generator reads the same source its own way.
                    var system = SystemRandomNumberGenerator()
                    return system.next()
                }
                used = 0
            }
            let value = bytes.load(fromByteOffset: used, as: UInt64.self)
            used += 8
            return value
        }

        deinit { bytes.deallocate() }
    }

    mutating func next() -> UInt64 {
        Self.pool.withLock { $0.next() }
    }
}
