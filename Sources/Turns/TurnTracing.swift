/// The trace context in the turn stream: the final event carries the `traceparent` of the worker's
/// span that wrote it (field `tp`), and an api that relays that event records a `turn relayed` span in
/// the same trace, so one trace runs from the `POST` to the client's last event. Nothing is written
/// or recorded with tracing off.
import Observability
import Tracing

public enum TurnTracing {
    /// The current span's `traceparent` for the final event (nil with tracing off).
    static func traceparentForFinalEvent() -> String? {
        TraceContext.currentTraceparent()
    }

    /// Records that this process relayed the final event `entry` of the turn of `messageID` (to an
    /// SSE client or a follower): a short span, child of the span that wrote the event.
    public static func relayed(_ entry: TurnStreamEntry, messageID: Int64) {
        guard let traceparent = entry.traceparent else { return }
        let span = startSpan("turn relayed", context: TraceContext.context(traceparent: traceparent), ofKind: .consumer)
        if span.isRecording {
            span.attributes["switchboard.message.id"] = Int(messageID)
            span.attributes["switchboard.stream.entry"] = entry.id
            span.attributes["switchboard.turn.event"] = entry.type
        }
        span.end()
    }
}
