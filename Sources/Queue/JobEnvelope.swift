import Foundation
import RedisClient
import SwitchboardCore

/// A job's identity, stable across retries (unlike its stream entry id).
public struct JobID: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    static func make() -> JobID { JobID(rawValue: UUID().uuidString.lowercased()) }
}

/// The wire form of a job: the fields of its stream entry (and, JSON-encoded as a flat array of
/// alternating names and values, the member of the delayed set).
package struct JobEnvelope: Sendable, Equatable {
    package enum Field {
        package static let id = "id"
        package static let name = "name"
        package static let version = "v"
        package static let payload = "data"
        package static let attempts = "att"      // runs already used up by failures
        package static let maxAttempts = "max"   // 0: the worker's default
        package static let enqueuedAt = "enq"    // first enqueue, microseconds since 1970
        package static let lastError = "err"
        package static let traceparent = "tp"     // W3C trace context of the enqueue, when traced
        // only in the failed stream
        package static let queue = "queue"
        package static let failedAt = "failed_at"
    }

    package var id: JobID
    package var name: String
    package var version: Int
    package var payload: [UInt8]
    package var attempts: Int
    package var maxAttempts: Int
    package var enqueuedAtMicros: Int64
    package var lastError: String?
    /// The `traceparent` of the enqueue's span: the job's span continues that trace (nil when tracing is off).
    package var traceparent: String?

    package var enqueuedAt: Date { Date(timeIntervalSince1970: Double(enqueuedAtMicros) / 1_000_000) }

    package static func nowMicros() -> Int64 { Int64((Date().timeIntervalSince1970 * 1_000_000).rounded()) }

    package var fields: [(String, [UInt8])] {
        var fields: [(String, [UInt8])] = [
            (Field.id, Array(id.rawValue.utf8)),
            (Field.name, Array(name.utf8)),
            (Field.version, Array(String(version).utf8)),
            (Field.payload, payload),
            (Field.attempts, Array(String(attempts).utf8)),
            (Field.maxAttempts, Array(String(maxAttempts).utf8)),
            (Field.enqueuedAt, Array(String(enqueuedAtMicros).utf8)),
        ]
        if let lastError { fields.append((Field.lastError, Array(lastError.utf8))) }
        if let traceparent { fields.append((Field.traceparent, Array(traceparent.utf8))) }
        return fields
    }

    /// Alternating names and values, as XADD wants them after the id.
    package var flatArguments: [any RESPArgument] {
        fields.flatMap { [$0.0 as any RESPArgument, $0.1 as any RESPArgument] }
    }

    /// The delayed-set member: a JSON array `[name, value, name, value, ...]` that the promote
    /// script unpacks into XADD. Payloads are JSON text, so every value is valid UTF-8.
    package func delayedMember() throws(QueueError) -> String {
        let strings = fields.map { [$0.0, String(decoding: $0.1, as: UTF8.self)] }.flatMap { $0 }
        do {
            return String(decoding: try JobCoding.encoder.encode(strings), as: UTF8.self)
        } catch {
            throw QueueError(.encodingFailed, "delayed member of \(id): \(error)")
        }
    }

    package init(id: JobID, name: String, version: Int, payload: [UInt8], attempts: Int, maxAttempts: Int,
         enqueuedAtMicros: Int64, lastError: String? = nil, traceparent: String? = nil) {
        self.id = id
        self.name = name
        self.version = version
        self.payload = payload
        self.attempts = attempts
        self.maxAttempts = maxAttempts
        self.enqueuedAtMicros = enqueuedAtMicros
        self.lastError = lastError
        self.traceparent = traceparent
    }

    /// Reads the envelope from stream entry fields; nil when required fields are missing.
    package init?(fields: [String: [UInt8]]) {
        func string(_ key: String) -> String? { fields[key].map { String(decoding: $0, as: UTF8.self) } }
        guard let id = string(Field.id), let name = string(Field.name), let payload = fields[Field.payload] else {
            return nil
        }
        self.id = JobID(rawValue: id)
        self.name = name
        self.version = string(Field.version).flatMap { Int($0) } ?? 1
        self.payload = payload
        self.attempts = string(Field.attempts).flatMap { Int($0) } ?? 0
        self.maxAttempts = string(Field.maxAttempts).flatMap { Int($0) } ?? 0
        self.enqueuedAtMicros = string(Field.enqueuedAt).flatMap { Int64($0) } ?? 0
        self.lastError = string(Field.lastError)
        self.traceparent = string(Field.traceparent)
    }
}

extension StreamEntry {
    /// Milliseconds since 1970 encoded in the entry id (when Redis added it).
    var addedAtMillis: Int64? {
        id.split(separator: "-", maxSplits: 1).first.flatMap { Int64($0) }
    }
}
