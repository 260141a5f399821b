import Foundation
import NIOCore

/// A protocol error answered in a reply: `{code, message, temporary}` (codes of Centrifugo's client protocol).
public struct GatewayError: Error, Sendable, Hashable {
    public var code: Int
    public var message: String
    public var temporary: Bool

    public init(code: Int, message: String, temporary: Bool = false) {
        self.code = code
        self.message = message
        self.temporary = temporary
    }

    public static let `internal` = GatewayError(code: 100, message: "internal server error", temporary: true)
    public static let unauthorized = GatewayError(code: 101, message: "unauthorized")
    public static let unknownChannel = GatewayError(code: 102, message: "unknown channel")
    public static let permissionDenied = GatewayError(code: 103, message: "permission denied")
    public static let methodNotFound = GatewayError(code: 104, message: "method not found")
    public static let alreadySubscribed = GatewayError(code: 105, message: "already subscribed")
    public static let limitExceeded = GatewayError(code: 106, message: "limit exceeded")
    public static let badRequest = GatewayError(code: 107, message: "bad request")
    public static let notAvailable = GatewayError(code: 108, message: "not available")
    public static let tokenExpired = GatewayError(code: 109, message: "token expired")
    public static let expired = GatewayError(code: 110, message: "expired")
    public static let tooManyRequests = GatewayError(code: 111, message: "too many requests", temporary: true)
    public static let unrecoverablePosition = GatewayError(code: 112, message: "unrecoverable position")

    func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("code", code)
        writer.field("message", message)
        if temporary { writer.field("temporary", true) }
        writer.endObject()
    }
}

/// Why a connection is closed: the WebSocket close code and reason the SDKs act on
/// (3000–3499 reconnect, 3500–3999 stop).
public struct Disconnect: Error, Sendable, Hashable {
    public var code: Int
    public var reason: String

    public init(code: Int, reason: String) {
        self.code = code
        self.reason = reason
    }

    public var reconnect: Bool { code < 3500 || code >= 5000 }

    public static let connectionClosed = Disconnect(code: 3000, reason: "connection closed")
    public static let shutdown = Disconnect(code: 3001, reason: "shutdown")
    public static let internalError = Disconnect(code: 3004, reason: "internal server error")
    public static let expired = Disconnect(code: 3005, reason: "connection expired")
    public static let subExpired = Disconnect(code: 3006, reason: "subscription expired")
    public static let slow = Disconnect(code: 3008, reason: "slow")
    public static let writeError = Disconnect(code: 3009, reason: "write error")
    public static let insufficientState = Disconnect(code: 3010, reason: "insufficient state")
    public static let forceReconnect = Disconnect(code: 3011, reason: "force reconnect")
    public static let noPong = Disconnect(code: 3012, reason: "no pong")
    public static let tooManyRequests = Disconnect(code: 3013, reason: "too many requests")
    public static let invalidToken = Disconnect(code: 3500, reason: "invalid token")
    public static let badRequest = Disconnect(code: 3501, reason: "bad request")
    public static let stale = Disconnect(code: 3502, reason: "stale")
    public static let forceNoReconnect = Disconnect(code: 3503, reason: "force disconnect")
    public static let connectionLimit = Disconnect(code: 3504, reason: "connection limit")
    public static let channelLimit = Disconnect(code: 3505, reason: "channel limit")
    public static let permissionDenied = Disconnect(code: 3507, reason: "permission denied")
    public static let messageTooLarge = Disconnect(code: 3501, reason: "message too large")
}

/// Unsubscribe push codes (≥ 2500: the client subscribes again).
enum UnsubscribeCode {
    static let server = 2000
    static let insufficient = 2500
    static let expired = 2501
}

// MARK: - Commands (client → server)

/// A command that does not have the shape of the protocol (the client is disconnected with 3501).
struct MalformedCommand: Error {}

/// Typed reads of a decoded command: a member of the wrong type is malformed, absent or null is nil.
private struct Fields {
    let members: [String: JSONValue]

    init(_ value: JSONValue?) throws(MalformedCommand) {
        guard case .object(let members)? = value else { throw MalformedCommand() }
        self.members = members
    }

    private func present(_ key: String) -> JSONValue? {
        guard let value = members[key], value != .null else { return nil }
        return value
    }

    func string(_ key: String) throws(MalformedCommand) -> String? {
        guard let value = present(key) else { return nil }
        guard case .string(let text) = value else { throw MalformedCommand() }
        return text
    }

    func bool(_ key: String) throws(MalformedCommand) -> Bool? {
        guard let value = present(key) else { return nil }
        guard case .bool(let flag) = value else { throw MalformedCommand() }
        return flag
    }

    func integer<I: FixedWidthInteger>(_ key: String, as type: I.Type = I.self) throws(MalformedCommand) -> I? {
        guard let value = present(key) else { return nil }
        switch value {
        case .int(let number):
            guard let result = I(exactly: number) else { throw MalformedCommand() }
            return result
        case .double(let number):
            guard let result = I(exactly: number) else { throw MalformedCommand() }
            return result
        default:
            throw MalformedCommand()
        }
    }

    func value(_ key: String) -> JSONValue? { present(key) }

    func object(_ key: String) throws(MalformedCommand) -> Fields? {
        guard let value = present(key) else { return nil }
        return try Fields(value)
    }
}

struct Command {
    var id: UInt32?
    var connect: ConnectRequest?
    var subscribe: SubscribeRequest?
    var unsubscribe: ChannelRequest?
    var publish: PublishRequest?
    var presence: ChannelRequest?
    var presence_stats: ChannelRequest?
    var history: HistoryRequest?
    var ping: JSONValue?
    var send: SendRequest?
    var rpc: RPCRequest?
    var refresh: RefreshRequest?
    var sub_refresh: SubRefreshRequest?

    /// An empty command `{}` is the client's pong.
    var isEmpty: Bool {
        connect == nil && subscribe == nil && unsubscribe == nil && publish == nil && presence == nil
            && presence_stats == nil && history == nil && ping == nil && send == nil && rpc == nil
            && refresh == nil && sub_refresh == nil
    }

    init(json: JSONValue) throws(MalformedCommand) {
        let fields = try Fields(json)
        id = try fields.integer("id")
        connect = try fields.object("connect").map(ConnectRequest.init)
        subscribe = try fields.object("subscribe").map(SubscribeRequest.init)
        unsubscribe = try fields.object("unsubscribe").map(ChannelRequest.init)
        publish = try fields.object("publish").map(PublishRequest.init)
        presence = try fields.object("presence").map(ChannelRequest.init)
        presence_stats = try fields.object("presence_stats").map(ChannelRequest.init)
        history = try fields.object("history").map(HistoryRequest.init)
        ping = fields.value("ping")
        send = try fields.object("send").map(SendRequest.init)
        rpc = try fields.object("rpc").map(RPCRequest.init)
        refresh = try fields.object("refresh").map(RefreshRequest.init)
        sub_refresh = try fields.object("sub_refresh").map(SubRefreshRequest.init)
    }
}

struct ConnectRequest {
    var token: String?
    var data: JSONValue?
    var subs: [String: SubscribeRequest]?
    var name: String?
    var version: String?

    fileprivate init(_ fields: Fields) throws(MalformedCommand) {
        token = try fields.string("token")
        data = fields.value("data")
        if let subs = try fields.object("subs") {
            var requests: [String: SubscribeRequest] = [:]
            for (channel, value) in subs.members { requests[channel] = try SubscribeRequest(try Fields(value)) }
            self.subs = requests
        }
        name = try fields.string("name")
        version = try fields.string("version")
    }
}

struct SubscribeRequest {
    var channel: String?
    var token: String?
    var recover: Bool?
    var epoch: String?
    var offset: UInt64?
    var data: JSONValue?
    var positioned: Bool?
    var recoverable: Bool?
    var join_leave: Bool?
    var flag: Int64?

    init(channel: String) {
        self.channel = channel
    }

    fileprivate init(_ fields: Fields) throws(MalformedCommand) {
        channel = try fields.string("channel")
        token = try fields.string("token")
        recover = try fields.bool("recover")
        epoch = try fields.string("epoch")
        offset = try fields.integer("offset")
        data = fields.value("data")
        positioned = try fields.bool("positioned")
        recoverable = try fields.bool("recoverable")
        join_leave = try fields.bool("join_leave")
        flag = try fields.integer("flag")
    }
}

struct ChannelRequest {
    var channel: String?

    fileprivate init(_ fields: Fields) throws(MalformedCommand) {
        channel = try fields.string("channel")
    }
}

struct PublishRequest {
    var channel: String?
    var data: JSONValue?

    fileprivate init(_ fields: Fields) throws(MalformedCommand) {
        channel = try fields.string("channel")
        data = fields.value("data")
    }
}

struct HistoryRequest {
    var channel: String?
    var limit: Int?
    var since: StreamPositionRequest?
    var reverse: Bool?

    fileprivate init(_ fields: Fields) throws(MalformedCommand) {
        channel = try fields.string("channel")
        limit = try fields.integer("limit")
        since = try fields.object("since").map(StreamPositionRequest.init)
        reverse = try fields.bool("reverse")
    }
}

struct StreamPositionRequest {
    var offset: UInt64?
    var epoch: String?

    init(offset: UInt64?, epoch: String?) {
        self.offset = offset
        self.epoch = epoch
    }

    fileprivate init(_ fields: Fields) throws(MalformedCommand) {
        offset = try fields.integer("offset")
        epoch = try fields.string("epoch")
    }
}

struct SendRequest {
    var data: JSONValue?

    fileprivate init(_ fields: Fields) throws(MalformedCommand) {
        data = fields.value("data")
    }
}

struct RPCRequest {
    var method: String?
    var data: JSONValue?

    fileprivate init(_ fields: Fields) throws(MalformedCommand) {
        method = try fields.string("method")
        data = fields.value("data")
    }
}

struct RefreshRequest {
    var token: String?

    fileprivate init(_ fields: Fields) throws(MalformedCommand) {
        token = try fields.string("token")
    }
}

struct SubRefreshRequest {
    var channel: String?
    var token: String?

    fileprivate init(_ fields: Fields) throws(MalformedCommand) {
        channel = try fields.string("channel")
        token = try fields.string("token")
    }
}

// MARK: - Shared values

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

/// Encodes one server → client message: a reply to command `id`, or a push when `id` is 0.
enum Reply {
    static func result(id: UInt32, method: String, body: (inout JSONWriter) -> Void) -> String {
        var writer = JSONWriter(capacity: 96)
        writer.beginObject()
        writer.field("id", id)
        writer.key(method)
        writer.beginObject()
        body(&writer)
        writer.endObject()
        writer.endObject()
        return writer.output
    }

    static func error(id: UInt32, _ error: GatewayError) -> String {
        var writer = JSONWriter(capacity: 96)
        writer.beginObject()
        writer.field("id", id)
        writer.key("error")
        error.write(to: &writer)
        writer.endObject()
        return writer.output
    }

    static func push(channel: String, kind: String, body: (inout JSONWriter) -> Void) -> String {
        var writer = JSONWriter(capacity: 128)
        writer.beginObject()
        writer.key("push")
        writer.beginObject()
        writer.field("channel", channel)
        writer.key(kind)
        body(&writer)
        writer.endObject()
        writer.endObject()
        return writer.output
    }

    static func publication(channel: String, _ publication: Publication) -> String {
        push(channel: channel, kind: "pub") { publication.write(to: &$0) }
    }

    /// The `pub` push around a publication's JSON as `Publication.json` wrote it (an object
    /// without `offset`), adding the offset as its last member; nil when the text is not an object.
    static func encodedPublication(channel: String, offset: UInt64, json: ArraySlice<UInt8>) -> OutboundMessage? {
        guard json.count >= 2, json.first == UInt8(ascii: "{"), json.last == UInt8(ascii: "}") else { return nil }
        var prefix = #"{"push":{"channel":"#
        JSONWriter.appendQuoted(channel, to: &prefix)
        prefix += #","pub":"#
        var buffer = ByteBufferAllocator().buffer(capacity: prefix.utf8.count + json.count + 32)
        buffer.writeString(prefix)
        if offset > 0 {
            buffer.writeBytes(json.dropLast())
            // An empty object takes the offset as its only member.
            if json.count > 2 { buffer.writeInteger(UInt8(ascii: ",")) }
            buffer.writeString(#""offset":\#(offset)}"#)
        } else {
            buffer.writeBytes(json)
        }
        buffer.writeString("}}")
        return OutboundMessage(sharedPayload: buffer)
    }

    static let ping = "{}"
}
