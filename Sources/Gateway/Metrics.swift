/// The gateway's Prometheus counters and their text rendering at `/metrics`.
import Foundation
import Observability
import Synchronization

/// Counters of one gateway process, rendered in the Prometheus text format at `/metrics`.
final class Metrics: Sendable {
    let messagesIn = Atomic<Int>(0)
    let messagesOut = Atomic<Int>(0)
    let slowDisconnects = Atomic<Int>(0)
    let connectionsAccepted = Atomic<Int>(0)
    let apiRequests = Atomic<Int>(0)
    let socketBacklogs = Atomic<Int>(0)
    /// Frames a fan-out sent through an event loop's io_uring instance (`SendBatch`).
    let ioUringSends = Atomic<Int>(0)
    /// Subscriptions a position check found behind their channel and unsubscribed to recover.
    let positionCheckUnsubscribes = Atomic<Int>(0)

    func render(connections: Int, subscriptions: Int, channels: Int) -> String {
        var out = PrometheusText()
        func metric(_ name: String, _ type: String, _ help: String, _ value: Int) {
            out.family(name, type, help)
            out.sample(name, [], Double(value))
        }
        metric("switchboard_gateway_connections", "gauge", "Open client connections on this node.", connections)
        metric("switchboard_gateway_subscriptions", "gauge", "Client subscriptions on this node.", subscriptions)
        metric("switchboard_gateway_channels", "gauge", "Channels with local subscribers.", channels)
        metric("switchboard_gateway_connections_accepted_total", "counter", "WebSocket connections accepted.", connectionsAccepted.load(ordering: .relaxed))
        metric("switchboard_gateway_messages_in_total", "counter", "WebSocket messages received from clients.", messagesIn.load(ordering: .relaxed))
        metric("switchboard_gateway_messages_out_total", "counter", "Replies and pushes queued to clients.", messagesOut.load(ordering: .relaxed))
        metric("switchboard_gateway_slow_disconnects_total", "counter", "Clients disconnected because their write queue was full.", slowDisconnects.load(ordering: .relaxed))
        metric("switchboard_gateway_api_requests_total", "counter", "Server API commands handled.", apiRequests.load(ordering: .relaxed))
        metric(
            "switchboard_gateway_socket_backlogs_total", "counter",
            "Writes a client's socket took only part of, the rest left to wait for it to drain (clients reading slower than they are sent to).",
            socketBacklogs.load(ordering: .relaxed))
        metric(
            "switchboard_gateway_io_uring_sends_total", "counter",
            "Frames sent to clients in batches through io_uring (the fanout_io_uring setting), rather than with a system call each.",
            ioUringSends.load(ordering: .relaxed))
        metric(
            "switchboard_gateway_position_check_unsubscribes_total", "counter",
            "Subscriptions found behind their channel's stream (a publication lost on its way to this node) and unsubscribed so the client recovers.",
            positionCheckUnsubscribes.load(ordering: .relaxed))
        return out.text
    }
}
