/// Delivery of publications and join/leave pushes to one client (the fan-out path; must not block).
import Foundation
import Logging
import NIOCore
import Synchronization

extension Client {
    /// Sends a publication's push (`message`, shared by all subscribers) at `offset` in the channel.
    /// `batch`: the send batch of the fan-out running on the connection's event loop
    /// (`FlushBatcher.fanOut`); nil from anywhere else.
    func deliver(channel: String, offset: UInt64, message: OutboundMessage, batch: SendBatch? = nil) {
        enum Outcome { case skip, written, slow, gap }
        let outcome = state.withLock { state -> Outcome in
            // One hash lookup, and the subscription read and updated in place (a copy of it would
            // retain and release its strings and buffer for every delivery).
            guard state.status == .connected, let index = state.subscriptions.index(forKey: channel) else { return .skip }
            if state.subscriptions.values[index].buffering {
                state.subscriptions.values[index].buffer.append((offset, message))
                return .skip
            }
            if state.subscriptions.values[index].tracksPosition, offset > 0 {
                let current = state.subscriptions.values[index].offset
                if offset <= current { return .skip }
                if offset > current + 1 { return .gap }
                state.subscriptions.values[index].offset = offset
            }
            guard let batch else { return write(message, movingPositionsIn: state) ? .written : .slow }
            let written =
                transport.wantsEventIDs
                ? transport.write(message, eventID: EventStreamID.make(state.subscriptions), into: batch)
                : transport.write(message, into: batch)
            return written ? .written : .slow
        }
        switch outcome {
        case .skip: break
        case .written: node.metrics.messagesOut.add(1, ordering: .relaxed)
        case .slow: slow()
        case .gap:
            // A publication went missing between broker and node: make the client resubscribe and recover.
            Task { await unsubscribeAsBehind(channel) }
        }
    }

    /// Writes a message that moves the client's positions (a publication, the connect result), with
    /// them as its event id when the transport wants one (`EventStreamID`); under the state lock.
    func write(_ message: OutboundMessage, movingPositionsIn state: ConnectionState) -> Bool {
        guard transport.wantsEventIDs else { return transport.write(message) }
        return transport.write(message, eventID: EventStreamID.make(state.subscriptions))
    }

    func deliverJoinLeave(channel: String, message: String) {
        let ok = state.withLock { state -> Bool in
            guard state.status == .connected, let subscription = state.subscriptions[channel], subscription.joinLeave,
                !subscription.buffering
            else { return true }
            return transport.write(message)
        }
        if !ok { slow() }
    }
}
