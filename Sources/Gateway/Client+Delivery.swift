/// Delivery of publications and join/leave pushes to one client (the fan-out path; must not block).
import Foundation
import Logging
import NIOCore
import Synchronization

extension Client {
    /// Sends a publication's push (`message`, shared by all subscribers) at `offset` in the channel.
    func deliver(channel: String, offset: UInt64, message: OutboundMessage) {
        enum Outcome { case skip, written, slow, gap }
        let outcome = state.withLock { state -> Outcome in
            guard state.status == .connected, var subscription = state.subscriptions[channel] else { return .skip }
            if subscription.buffering {
                state.subscriptions[channel]?.buffer.append((offset, message))
                return .skip
            }
            if subscription.tracksPosition, offset > 0 {
                if offset <= subscription.offset { return .skip }
                if offset > subscription.offset + 1 { return .gap }
                subscription.offset = offset
                state.subscriptions[channel] = subscription
            }
            return transport.write(message) ? .written : .slow
        }
        switch outcome {
        case .skip: break
        case .written: node.metrics.messagesOut.add(1, ordering: .relaxed)
        case .slow: slow()
        case .gap:
            // A publication went missing between broker and node: make the client resubscribe and recover.
            Task { await serverUnsubscribe(channel: channel, code: UnsubscribeCode.insufficient, reason: "insufficient state") }
        }
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
