/// How one subscribe request is served, decided without I/O: the channel's options after the
/// subscription token's overrides, whether the stream is recoverable and positioned, whether
/// join/leave pushes are wanted, whether the client is recovering and from where; what a history
/// read recovered; and the subscribe result it is answered with.
import SwitchboardCore

/// The decisions of one subscription, from the namespace options, the token's overrides and the request.
struct SubscriptionPlan {
    /// The namespace options with the token's overrides applied.
    var options: ChannelOptions
    var recoverable: Bool
    var positioned: Bool
    var joinLeave: Bool
    /// The client asked to recover and the stream is recoverable.
    var wasRecovering: Bool
    /// Where to recover from: set when recovering with an epoch.
    var recoverySince: StreamPosition?
    /// Flag bit 2: an unrecovered position is refused with 112 instead of subscribing.
    var rejectsUnrecovered: Bool

    init(namespaceOptions: ChannelOptions, override: [String: Bool]?, request: SubscribeRequest, serverSide: Bool) {
        var options = namespaceOptions
        if let override {
            if let value = override["presence"] { options.presence = value }
            if let value = override["join_leave"] { options.joinLeave = value }
            if let value = override["force_push_join_leave"] { options.forcePushJoinLeave = value }
            if let value = override["force_recovery"] { options.forceRecovery = value }
            if let value = override["force_positioning"] { options.forcePositioning = value }
        }
        self.options = options
        recoverable = options.historyEnabled && (options.forceRecovery || request.recoverable == true || serverSide)
        positioned = options.historyEnabled && (recoverable || options.forcePositioning || request.positioned == true)
        joinLeave = options.joinLeave && (options.forcePushJoinLeave || request.join_leave == true)
        wasRecovering = request.recover == true && recoverable
        if wasRecovering, let epoch = request.epoch {
            recoverySince = StreamPosition(offset: request.offset ?? 0, epoch: epoch)
        }
        if let flag = request.flag { rejectsUnrecovered = flag & 2 != 0 } else { rejectsUnrecovered = false }
    }

    /// What a history read since `since` recovered: the publications after it (none when the
    /// epoch changed), and whether nothing was missed (the history still holds `since.offset + 1`,
    /// or nothing was published since).
    static func recovery(since: StreamPosition, from result: HistoryResult) -> (publications: [Publication], recovered: Bool) {
        guard result.position.epoch == since.epoch else { return ([], false) }
        if let first = result.publications.first {
            return (result.publications, first.offset == since.offset + 1)
        }
        return (result.publications, result.position.offset == since.offset)
    }

    /// The offset the client is at after the reply: the stream's, or the last recovered publication's if later.
    static func offset(position: StreamPosition, publications: [Publication]) -> UInt64 {
        max(position.offset, publications.last?.offset ?? 0)
    }

    /// The subscribe result (the body of a reply or a subscribe push) as a JSON object.
    func result(
        position: StreamPosition?, publications: [Publication], recovered: Bool, expiresAt: Int64?, now: Int64, data: String?
    ) -> String {
        var writer = JSONWriter(capacity: 128)
        writer.beginObject()
        if let expiresAt {
            writer.field("expires", true)
            writer.field("ttl", max(0, expiresAt - now))
        }
        if recoverable { writer.field("recoverable", true) }
        if positioned { writer.field("positioned", true) }
        if let position {
            if !position.epoch.isEmpty { writer.field("epoch", position.epoch) }
            let offset = Self.offset(position: position, publications: publications)
            if offset > 0 { writer.field("offset", offset) }
        }
        if !publications.isEmpty {
            writer.key("publications")
            writer.beginArray()
            for publication in publications { publication.write(to: &writer) }
            writer.endArray()
        }
        if wasRecovering { writer.field("was_recovering", true) }
        if recovered { writer.field("recovered", true) }
        if let data { writer.rawField("data", data) }
        writer.endObject()
        return writer.output
    }
}
