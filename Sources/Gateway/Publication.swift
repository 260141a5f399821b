/// The values shared by clients, brokers and the server API: `ClientInfo`, `Publication`, `StreamPosition`,
/// and their JSON forms.
import Foundation
import SwitchboardCore

/// Who published or joined: `{user, client, conn_info?, chan_info?}`; info payloads are raw JSON.
public struct ClientInfo: Sendable, Hashable {
    public var user: String
    public var client: String
    public var connInfo: String?
    public var chanInfo: String?

    public init(user: String, client: String, connInfo: String? = nil, chanInfo: String? = nil) {
        self.user = user
        self.client = client
        self.connInfo = connInfo
        self.chanInfo = chanInfo
    }

    func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("user", user)
        writer.field("client", client)
        if let connInfo { writer.rawField("conn_info", connInfo) }
        if let chanInfo { writer.rawField("chan_info", chanInfo) }
        writer.endObject()
    }

    var json: String {
        var writer = JSONWriter()
        write(to: &writer)
        return writer.output
    }

    init?(json value: JSONValue) {
        guard let user = value["user"]?.stringValue, let client = value["client"]?.stringValue else { return nil }
        self.init(
            user: user, client: client,
            connInfo: value["conn_info"].map(\.serialized),
            chanInfo: value["chan_info"].map(\.serialized)
        )
    }
}

/// A message in a channel. `data` is raw JSON text.
public struct Publication: Sendable, Hashable {
    public var offset: UInt64
    public var data: String
    public var info: ClientInfo?
    public var tags: [String: String]?

    public init(offset: UInt64 = 0, data: String, info: ClientInfo? = nil, tags: [String: String]? = nil) {
        self.offset = offset
        self.data = data
        self.info = info
        self.tags = tags
    }

    func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.rawField("data", data)
        if let info {
            writer.key("info")
            info.write(to: &writer)
        }
        if offset > 0 { writer.field("offset", offset) }
        if let tags, !tags.isEmpty {
            writer.key("tags")
            writer.beginObject()
            for (name, value) in tags.sorted(by: { $0.key < $1.key }) { writer.field(name, value) }
            writer.endObject()
        }
        writer.endObject()
    }

    var json: String {
        var writer = JSONWriter(capacity: data.utf8.count + 64)
        write(to: &writer)
        return writer.output
    }

    init?(json value: JSONValue) {
        guard let data = value["data"] else { return nil }
        var tags: [String: String]?
        if case .object(let members)? = value["tags"] {
            tags = members.compactMapValues(\.stringValue)
        }
        self.init(
            offset: value["offset"]?.int64Value.map { UInt64(max(0, $0)) } ?? 0,
            data: data.serialized,
            info: value["info"].flatMap(ClientInfo.init(json:)),
            tags: tags
        )
    }
}

/// A place in a channel's history stream: the offset of the last publication and the epoch that
/// names this incarnation of the stream (a new epoch means the history was lost).
public struct StreamPosition: Sendable, Hashable {
    public var offset: UInt64
    public var epoch: String

    public init(offset: UInt64, epoch: String) {
        self.offset = offset
        self.epoch = epoch
    }
}
