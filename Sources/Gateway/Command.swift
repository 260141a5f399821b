/// Decoding of client commands (client → server) from parsed JSON: `Command` and one request type per method;
/// anything of the wrong shape is a `MalformedCommand`.
#if !FUZZ_TARGET  // the libFuzzer target compiles this file together with JSON.swift
import SwitchboardCore
#endif

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

    /// A connect request on its own (the unidirectional endpoint's first message), not in a command.
    init(json: JSONValue) throws(MalformedCommand) {
        try self.init(try Fields(json))
    }

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
