/// Where a running turn reports progress: the one protocol the pipeline emits `TurnEvent`s to.
/// On workers it is the turn's `TurnEventQueue` (events go to the turn stream); tests record them.
import Foundation

/// Takes a running turn's progress events (`status`, `plan`, `task_*`, `chunk`). The final
/// `complete` / `error` are not emitted here: the turn job ends the stream (`TurnStreamWriter.end`).
public protocol TurnEventSink: Sendable {
    func emit(_ event: TurnEvent) async throws
}

extension TurnEventQueue: TurnEventSink {
    public func emit(_ event: TurnEvent) async throws { try await append(event) }
}

/// Keeps every event, in order (tests, benchmarks, and callers that want the transcript).
public actor RecordingEventSink: TurnEventSink {
    public private(set) var events: [TurnEvent] = []
    public init() {}
    public func emit(_ event: TurnEvent) async throws {
        precondition(!event.isFinal, "complete and error are written by the turn job")
        events.append(event)
    }
}
