/// Queue: Switchboard's durable job queues and the worker runtime that drains them.
///
/// Owns everything between "a producer wants work done" and "the work is done or has failed for
/// good": the Redis Streams wire format of a job, enqueueing (`JobQueue`, idempotent and delayed),
/// the worker runtime (`WorkerService`: concurrency slots, timeouts, retries with backoff,
/// reclaiming jobs of dead workers, graceful drain) and the driver seam it talks through
/// (`JobQueueDriver`: `RedisStreamsDriver` with consumer groups, `MemoryJobQueueDriver` for logic
/// tests), the dead-letter stream (`FailedJobs`), and the worker's `/health` + `/metrics`
/// endpoint (`WorkerHealthServer`). Multi-key changes are Lua scripts (`QueueScripts`) so a crash
/// can neither lose nor double a job.
/// Key families, TTLs and failure semantics: docs/queues.md.
import Foundation
import SwitchboardCore

/// The name of a queue (one Redis stream). The standard queues are static members; `failed` is
/// the dead-letter stream and is never served by workers.
public struct QueueName: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible,
    ExpressibleByStringLiteral
{
    public let rawValue: String

    /// Accepts lowercase letters, digits, `-` and `_` (1–64 characters).
    public init?(rawValue: String) {
        guard (1...64).contains(rawValue.utf8.count),
            rawValue.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 95 })
        else { return nil }
        self.rawValue = rawValue
    }

    public init(stringLiteral value: String) {
        guard let name = QueueName(rawValue: value) else { preconditionFailure("invalid queue name \(value)") }
        self = name
    }

    /// Parses a queue name, throwing `QueueError.invalidQueue` when it is malformed.
    public static func parse(_ value: String) throws(QueueError) -> QueueName {
        guard let name = QueueName(rawValue: value.trimmingCharacters(in: .whitespaces)) else {
            throw QueueError(.invalidQueue, "invalid queue name '\(value)' (use a-z, 0-9, '-', '_')")
        }
        return name
    }

    public var description: String { rawValue }

    /// AI turns (classification, planning, generation).
    public static let ai: QueueName = "ai"
    /// Attachment text extraction.
    public static let extract: QueueName = "extract"
    /// Embedding and indexing of extracted text.
    public static let index: QueueName = "index"
    /// Outbound sends (WhatsApp, email, callbacks).
    public static let delivery: QueueName = "delivery"
    /// Dead letters: jobs that used up their attempts. Read through `FailedJobs`.
    public static let failed: QueueName = "failed"

    /// The queues a worker serves by default.
    public static let workQueues: [QueueName] = [.ai, .extract, .index, .delivery]
}

/// Key names (without the client's prefix) of every Redis key family this module owns.
/// The client prefixes them (default `sb:`). Documented in docs/queues.md.
enum QueueKeys {
    /// Stream of ready and in-progress jobs of a queue.
    static func stream(_ queue: QueueName) -> String { "queue:\(queue.rawValue)" }
    /// Sorted set of jobs waiting for their time (delayed enqueue, retry backoff); score = due ms.
    static func delayed(_ queue: QueueName) -> String { "queue:\(queue.rawValue):delayed" }
    /// Idempotency key of an enqueue → the job id it produced; expires after the option's TTL.
    static func idempotency(_ queue: QueueName, _ key: String) -> String { "queue:\(queue.rawValue):idem:\(key)" }
    /// The dead-letter stream.
    static let failed = "queue:failed"
}

/// An error of the queue module. `code` can grow without breaking callers that switch on it.
public typealias QueueError = CodedError<QueueFailure>

/// The kind of `QueueError`s.
public enum QueueFailure {}

extension ErrorCode where Kind == QueueFailure {
    /// A queue name is malformed or not allowed here.
    public static var invalidQueue: Self { "invalidQueue" }
    /// A job payload could not be encoded.
    public static var encodingFailed: Self { "encodingFailed" }
    /// A job payload could not be decoded (corrupt, or from an incompatible version).
    public static var decodingFailed: Self { "decodingFailed" }
    /// No handler is registered for a job's name.
    public static var unknownJob: Self { "unknownJob" }
    /// A job is of a newer version than this worker understands.
    public static var unsupportedVersion: Self { "unsupportedVersion" }
    /// A job ran longer than the worker's job timeout.
    public static var jobTimedOut: Self { "jobTimedOut" }
    /// A job was delivered more often than its attempts allow (its workers kept dying).
    public static var tooManyDeliveries: Self { "tooManyDeliveries" }
    /// Redis answered something this module did not expect.
    public static var unexpectedReply: Self { "unexpectedReply" }
    /// Invalid configuration or options.
    public static var invalidConfiguration: Self { "invalidConfiguration" }
}

/// Mark an error thrown by a job handler as permanent: the job goes to `failed` at once instead
/// of being retried (a malformed request will not get better by waiting).
public protocol PermanentJobError: Error {}
