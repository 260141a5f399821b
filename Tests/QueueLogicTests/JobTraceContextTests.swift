/// The trace context in the job envelope: a `traceparent` written at enqueue comes back from the
/// stream entry's fields and from the delayed-set member (retries, delays), and an envelope
/// without one carries no field at all (tracing off costs no bytes in Redis).
import Foundation
import Queue
import Testing

@Suite struct JobTraceContextTests {
    static let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    static func envelope(traceparent: String?) -> JobEnvelope {
        JobEnvelope(
            id: JobID(rawValue: "job-1"), name: "turn", version: 1, payload: Array(#"{"messageId":7}"#.utf8), attempts: 2,
            maxAttempts: 5, enqueuedAtMicros: 1_700_000_000_000_000, lastError: "boom", traceparent: traceparent)
    }

    static func indexed(_ fields: [(String, [UInt8])]) -> [String: [UInt8]] {
        Dictionary(fields, uniquingKeysWith: { _, last in last })
    }

    @Test func theEnvelopeRoundTripsItsTraceparent() throws {
        let envelope = Self.envelope(traceparent: Self.traceparent)
        let read = try #require(JobEnvelope(fields: Self.indexed(envelope.fields)))
        #expect(read == envelope)
        #expect(read.traceparent == Self.traceparent)

        // The delayed-set member (a retry's backoff, a delayed job) keeps it too.
        let member = try envelope.delayedMember()
        let strings = try #require(try JSONSerialization.jsonObject(with: Data(member.utf8)) as? [String])
        var fields: [String: [UInt8]] = [:]
        for index in stride(from: 0, to: strings.count, by: 2) { fields[strings[index]] = Array(strings[index + 1].utf8) }
        #expect(JobEnvelope(fields: fields)?.traceparent == Self.traceparent)
    }

    @Test func anEnvelopeWithoutTraceContextWritesNoField() throws {
        let envelope = Self.envelope(traceparent: nil)
        #expect(!envelope.fields.contains { $0.0 == JobEnvelope.Field.traceparent })
        #expect(try #require(JobEnvelope(fields: Self.indexed(envelope.fields))).traceparent == nil)
    }

    @Test func aJobEnqueuedWithTracingOffCarriesNoTraceContext() async throws {
        let driver = MemoryJobQueueDriver()
        try await driver.enqueue(PlainJob(value: 1), on: .ai)
        let claimed = try await driver.claim(from: [.ai], limitPerQueue: 1, wait: nil)
        #expect(claimed.count == 1)
        #expect(claimed.first?.envelope?.traceparent == nil)
        #expect(claimed.first?.fields.contains { $0.name == JobEnvelope.Field.traceparent } == false)
    }
}

struct PlainJob: JobPayload {
    static let name = "plain"
    var value: Int
}
