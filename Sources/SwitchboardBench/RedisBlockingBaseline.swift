import CHiredis
import NIOPosix
import Synchronization

/// The design RedisClient did not take, kept for comparison: blocking hiredis contexts
/// (`redisConnect`, `redisAppendCommandArgv`, `redisGetReply`) driven from an NIOThreadPool, one
/// context per thread, each pipeline() call occupying a thread until its replies are read.
/// Used by `switchboard-bench redis --mode blocking`.
final class BlockingHiredisPool: Sendable {
    /// A hiredis context; only ever used by the one thread that took it from `free`.
    private struct Context: @unchecked Sendable { let pointer: UnsafeMutablePointer<redisContext> }

    /// One command's arguments in C memory that stays put for the whole run.
    struct CArguments: @unchecked Sendable {
        let argv: UnsafeMutablePointer<UnsafePointer<CChar>?>
        let lengths: UnsafeMutablePointer<Int>
        let count: Int32

        init(_ arguments: [[UInt8]]) {
            argv = .allocate(capacity: arguments.count)
            lengths = .allocate(capacity: arguments.count)
            count = Int32(arguments.count)
            for (i, argument) in arguments.enumerated() {
                let bytes = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, argument.count))
                argument.withUnsafeBytes { raw in
                    if let base = raw.baseAddress { UnsafeMutableRawPointer(bytes).copyMemory(from: base, byteCount: raw.count) }
                }
                argv[i] = UnsafePointer(bytes)
                lengths[i] = argument.count
            }
        }
    }

    struct Failure: Error, CustomStringConvertible { var description: String }

    private let threads: NIOThreadPool
    private let free = Mutex<[Context]>([])
    private let all: [Context]

    init(host: String, port: Int, password: String?, database: Int, connections: Int) async throws {
        let threads = NIOThreadPool(numberOfThreads: connections)
        threads.start()
        self.threads = threads
        var setup: [CArguments] = []
        if let password { setup.append(CArguments([Array("AUTH".utf8), Array(password.utf8)])) }
        if database != 0 { setup.append(CArguments([Array("SELECT".utf8), Array(String(database).utf8)])) }
        var contexts: [Context] = []
        for _ in 0..<connections {
            let context = try await threads.runIfActive { [setup] () throws -> Context in
                guard let c = redisConnect(host, Int32(port)), c.pointee.err == 0 else {
                    throw Failure(description: "redisConnect \(host):\(port) failed")
                }
                let context = Context(pointer: c)
                for command in setup { try Self.run(command, depth: 1, on: context) }
                return context
            }
            contexts.append(context)
        }
        all = contexts
        free.withLock { $0 = contexts }
    }

    /// Sends the command `depth` times in one go on a free context and reads every reply.
    func pipeline(_ command: CArguments, depth: Int) async throws {
        try await threads.runIfActive { [self] in
            guard let context = self.free.withLock({ $0.popLast() }) else { throw Failure(description: "no free context") }
            defer { self.free.withLock { $0.append(context) } }
            try Self.run(command, depth: depth, on: context)
        }
    }

    private static func run(_ command: CArguments, depth: Int, on context: Context) throws {
        for _ in 0..<depth {
            if redisAppendCommandArgv(context.pointer, command.count, command.argv, command.lengths) != REDIS_OK {
                throw Failure(description: "redisAppendCommandArgv failed")
            }
        }
        for _ in 0..<depth {
            var reply: UnsafeMutableRawPointer?
            guard redisGetReply(context.pointer, &reply) == REDIS_OK, let reply else {
                throw Failure(description: "redisGetReply failed")
            }
            defer { freeReplyObject(reply) }
            if reply.assumingMemoryBound(to: redisReply.self).pointee.type == REDIS_REPLY_ERROR {
                throw Failure(description: "error reply")
            }
        }
    }

    func shutdown() async throws {
        for context in all { redisFree(context.pointer) }
        try await threads.shutdownGracefully()
    }
}
