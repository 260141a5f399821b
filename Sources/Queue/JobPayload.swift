import Foundation
import Logging
import SwitchboardCore
import Synchronization

/// A typed job. Its `name` is the wire identity (stable across releases); `version` grows when the
/// struct changes incompatibly, and `decode(_:version:)` can migrate older payloads.
public protocol JobPayload: Codable, Sendable {
    static var name: String { get }
    static var version: Int { get }
    /// Decodes a payload written by `version` of this type. The default accepts the current and
    /// older versions as they are (additive changes) and rejects newer ones.
    static func decode(_ data: [UInt8], version: Int) throws -> Self
}

extension JobPayload {
    public static var version: Int { 1 }

    public static func decode(_ data: [UInt8], version: Int) throws -> Self {
        guard version <= Self.version else {
            throw QueueError(.unsupportedVersion, "\(name) v\(version) is newer than this worker's v\(Self.version)")
        }
        do {
            return try JSONDecoder().decode(Self.self, from: Data(data))
        } catch {
            throw QueueError(.decodingFailed, "\(name) v\(version): \(error)")
        }
    }

    func encodedPayload() throws(QueueError) -> [UInt8] {
        do {
            return Array(try JobCoding.encoder.encode(self))
        } catch {
            throw QueueError(.encodingFailed, "\(Self.name): \(error)")
        }
    }
}

enum JobCoding {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }()
}

/// What a handler knows about the job it runs.
public struct JobContext: Sendable {
    /// The job's id (stable across retries).
    public let jobID: JobID
    public let queue: QueueName
    /// The job's name (`JobPayload.name`).
    public let name: String
    /// 1 for the first run; counts failed runs and deliveries to workers that died.
    public let attempt: Int
    /// How often the current stream entry was delivered (1 normally; more after reclaims).
    public let deliveryCount: Int
    /// Attempts allowed before the job goes to `failed`.
    public let maxAttempts: Int
    /// When the job was first enqueued.
    public let enqueuedAt: Date
    /// The id of the worker running it.
    public let workerID: String
    /// Carries `job_id`, `job_name`, `queue` and `attempt` metadata.
    public var logger: Logger

    let control: JobControl

    /// True once the job should stop: the worker shuts down past its grace period, the job timed
    /// out, or another worker has taken the job over. Long handlers check this between steps.
    public var isCancelled: Bool { Task.isCancelled || control.isStopped }

    /// Throws `CancellationError` when `isCancelled`.
    public func checkCancellation() throws {
        if isCancelled { throw CancellationError() }
    }
}

/// Per-run control shared between a running job and the worker's watchdog.
final class JobControl: Sendable {
    enum StopReason: Sendable { case timeout, shutdown, claimLost }

    private struct State {
        var reason: StopReason?
        var task: Task<Void, Never>?
    }
    private let state = Mutex(State())

    var isStopped: Bool { state.withLock { $0.reason != nil } }
    var reason: StopReason? { state.withLock { $0.reason } }

    func attach(_ task: Task<Void, Never>) {
        let cancelNow = state.withLock { state -> Bool in
            state.task = task
            return state.reason != nil
        }
        if cancelNow { task.cancel() }
    }

    /// Records the first reason and cancels the job's task.
    func stop(_ reason: StopReason) {
        let task = state.withLock { state -> Task<Void, Never>? in
            if state.reason == nil { state.reason = reason }
            return state.task
        }
        task?.cancel()
    }
}

/// Handlers by job name. Build it once at startup and hand it to the worker.
public struct JobRegistry: Sendable {
    struct Entry: Sendable {
        let version: Int
        let run: @Sendable (_ payload: [UInt8], _ version: Int, _ context: JobContext) async throws -> Void
    }

    private(set) var entries: [String: Entry] = [:]

    public init() {}

    /// Registers the handler of `P`. A later registration of the same name replaces the earlier.
    public mutating func register<P: JobPayload>(
        _ type: P.Type = P.self,
        handler: @escaping @Sendable (P, JobContext) async throws -> Void
    ) {
        entries[P.name] = Entry(version: P.version) { payload, version, context in
            try await handler(try P.decode(payload, version: version), context)
        }
    }

    /// Names of the registered jobs.
    public var names: [String] { entries.keys.sorted() }

    func entry(_ name: String) -> Entry? { entries[name] }
}
