/// Commands from the server API that every node must act on (disconnect, subscribe, unsubscribe), and their JSON form.
import SwitchboardCore

/// A command every node must act on (from the server API): it reaches all nodes through the broker.
struct ControlCommand: Sendable, Hashable {
    enum Kind: String, Sendable { case disconnect, unsubscribe, subscribe }
    var kind: Kind
    var user: String
    var client: String?
    var channel: String?
    var code: Int?
    var reason: String?

    var json: String {
        var writer = JSONWriter()
        writer.beginObject()
        writer.field("kind", kind.rawValue)
        writer.field("user", user)
        if let client { writer.field("client", client) }
        if let channel { writer.field("channel", channel) }
        if let code { writer.field("code", code) }
        if let reason { writer.field("reason", reason) }
        writer.endObject()
        return writer.output
    }

    init(kind: Kind, user: String, client: String? = nil, channel: String? = nil, code: Int? = nil, reason: String? = nil) {
        self.kind = kind
        self.user = user
        self.client = client
        self.channel = channel
        self.code = code
        self.reason = reason
    }

    init?(json value: JSONValue) {
        guard let kind = value["kind"]?.stringValue.flatMap(Kind.init(rawValue:)), let user = value["user"]?.stringValue else {
            return nil
        }
        self.init(
            kind: kind, user: user, client: value["client"]?.stringValue, channel: value["channel"]?.stringValue,
            code: value["code"]?.int64Value.map { Int($0) }, reason: value["reason"]?.stringValue
        )
    }
}
