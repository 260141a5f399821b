/// One reader's view of a turn through the node's `TurnStreamHub`: what the hub read before this
/// reader came (read here once, up to where the hub's read began), then the hub's deliveries;
/// every entry once, in stream order, after the reader's cursor, and nothing past the final one.
/// The SSE relay and the turn follower (OpenAI endpoint, generic webhook `wait`) both read this
/// way, so neither holds a Redis connection of its own while it waits. It is read either by
/// `next(timeout:)` (a task waits for each delivery) or in push mode (`catchUp`, then `attach`:
/// deliveries go to a sink, and `accept` keeps the same once-in-order rule), which a stream
/// served from a channel handler uses to need no task while it waits.
import Turns

struct TurnStreamSubscription: Sendable {
    enum Next: Sendable {
        /// New entries (possibly none, when the hub only delivered what this reader had seen);
        /// the last one is final when the turn ended.
        case entries([TurnStreamEntry])
        /// Nothing arrived within the timeout.
        case idle
        /// The reader fell too far behind and was dropped by the hub (`resubscribe` continues
        /// from the cursor).
        case cutOff
        case cancelled
    }

    let hub: TurnStreamHub
    let reader: TurnStreamReader
    let messageID: Int64
    /// The newest entry handed out ("0-0" for none).
    private(set) var cursor: String
    private(set) var ended = false
    private var viewer: TurnStreamViewer
    /// Where the hub's read for this viewer began when it was already past `cursor`.
    private var catchUpTo: String?

    /// Follows `messageID` after `after` ("0-0": from its first entry).
    init(hub: TurnStreamHub, reader: TurnStreamReader, messageID: Int64, after: String) {
        self.hub = hub
        self.reader = reader
        self.messageID = messageID
        cursor = after
        (viewer, catchUpTo) = hub.subscribe(messageID: messageID, after: after)
    }

    /// The next entries, waiting up to `timeout` for the hub to deliver some.
    mutating func next(timeout: Duration) async throws -> Next {
        if ended { return .entries([]) }
        if let target = catchUpTo {
            if StreamEntryID.isAfter(target, cursor) {
                let fresh = take(try await reader.read(messageID: messageID, after: cursor, block: nil))
                if !fresh.isEmpty { return .entries(fresh) }
            }
            catchUpTo = nil
        }
        switch await viewer.next(timeout: timeout) {
        case .entries(let entries): return .entries(take(entries))
        case .idle: return .idle
        case .cutOff: return .cutOff
        case .cancelled: return .cancelled
        }
    }

    /// Push mode, first step: the entries the hub had read before this reader came, up to where
    /// its read began (none when it began at or before the cursor).
    mutating func catchUp() async throws -> [TurnStreamEntry] {
        guard let target = catchUpTo else { return [] }
        var caught: [TurnStreamEntry] = []
        while !ended, StreamEntryID.isAfter(target, cursor) {
            let fresh = take(try await reader.read(messageID: messageID, after: cursor, block: nil))
            if fresh.isEmpty { break }
            caught += fresh
        }
        catchUpTo = nil
        return caught
    }

    /// Push mode, second step: every later delivery goes to `sink` (on the hub's reader, in
    /// order; pass them through `accept`). Answers what was delivered meanwhile, or `cutOff`.
    func attach(_ sink: @escaping @Sendable ([TurnStreamEntry]) -> Void) -> Next {
        switch viewer.attach(sink) {
        case .entries(let entries): return .entries(entries)
        case .cutOff: return .cutOff
        case .idle: return .idle
        case .cancelled: return .cancelled
        }
    }

    /// Push mode: the entries of a delivery that are new to this reader (after the cursor,
    /// through the final one); moves the cursor.
    mutating func accept(_ entries: [TurnStreamEntry]) -> [TurnStreamEntry] {
        take(entries)
    }

    /// Follows again from the cursor after the hub dropped this reader.
    mutating func resubscribe() {
        viewer.cancel()
        (viewer, catchUpTo) = hub.subscribe(messageID: messageID, after: cursor)
    }

    /// Leaves the hub; call once the reader is done.
    func cancel() {
        viewer.cancel()
    }

    /// The entries of `entries` after the cursor, through the final one; moves the cursor.
    private mutating func take(_ entries: [TurnStreamEntry]) -> [TurnStreamEntry] {
        var fresh: [TurnStreamEntry] = []
        for entry in entries where !ended && StreamEntryID.isAfter(entry.id, cursor) {
            fresh.append(entry)
            cursor = entry.id
            if entry.isFinal {
                ended = true
                TurnTracing.relayed(entry, messageID: messageID)
            }
        }
        return fresh
    }
}
