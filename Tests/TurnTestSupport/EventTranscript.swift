/// Reading a recorded turn's events in tests.
import Turns

extension Array where Element == TurnEvent {
    /// The reply text the `chunk` events carry, joined.
    public var chunks: String {
        compactMap { if case .chunk(let chunk) = $0 { chunk.text } else { nil } }.joined()
    }

    /// Each `task_update` as (node id, state).
    public var updates: [(String, TaskUpdate.State)] {
        compactMap { if case .taskUpdate(let update) = $0 { (update.nodeID, update.state) } else { nil } }
    }
}
