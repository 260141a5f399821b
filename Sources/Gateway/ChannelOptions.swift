/// Options of channels: `ChannelOptions` (per namespace, or for channels without one) and `NamespaceConfiguration`.
import Foundation

/// Options of a channel namespace (or of channels without one). Decoding accepts any subset of the
/// snake_case keys; everything absent keeps Centrifugo's default (off / 0).
public struct ChannelOptions: Sendable, Codable, Hashable {
    public var presence = false
    public var joinLeave = false
    public var forcePushJoinLeave = false
    public var historySize = 0
    /// Seconds a channel's history is kept after its last publication.
    public var historyTTL = 0
    public var forceRecovery = false
    public var forcePositioning = false
    public var allowSubscribeForClient = false
    public var allowSubscribeForAnonymous = false
    public var allowPublishForSubscriber = false
    public var allowPublishForClient = false
    public var allowPresenceForSubscriber = false
    public var allowHistoryForSubscriber = false

    public init() {}

    /// History (and so recovery and positioning) needs both a size and a ttl.
    public var historyEnabled: Bool { historySize > 0 && historyTTL > 0 }

    enum CodingKeys: String, CodingKey {
        case presence
        case joinLeave = "join_leave"
        case forcePushJoinLeave = "force_push_join_leave"
        case historySize = "history_size"
        case historyTTL = "history_ttl"
        case forceRecovery = "force_recovery"
        case forcePositioning = "force_positioning"
        case allowSubscribeForClient = "allow_subscribe_for_client"
        case allowSubscribeForAnonymous = "allow_subscribe_for_anonymous"
        case allowPublishForSubscriber = "allow_publish_for_subscriber"
        case allowPublishForClient = "allow_publish_for_client"
        case allowPresenceForSubscriber = "allow_presence_for_subscriber"
        case allowHistoryForSubscriber = "allow_history_for_subscriber"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        presence = try container.decodeIfPresent(Bool.self, forKey: .presence) ?? false
        joinLeave = try container.decodeIfPresent(Bool.self, forKey: .joinLeave) ?? false
        forcePushJoinLeave = try container.decodeIfPresent(Bool.self, forKey: .forcePushJoinLeave) ?? false
        historySize = try container.decodeIfPresent(Int.self, forKey: .historySize) ?? 0
        historyTTL = try decodeSeconds(container, .historyTTL) ?? 0
        forceRecovery = try container.decodeIfPresent(Bool.self, forKey: .forceRecovery) ?? false
        forcePositioning = try container.decodeIfPresent(Bool.self, forKey: .forcePositioning) ?? false
        allowSubscribeForClient = try container.decodeIfPresent(Bool.self, forKey: .allowSubscribeForClient) ?? false
        allowSubscribeForAnonymous = try container.decodeIfPresent(Bool.self, forKey: .allowSubscribeForAnonymous) ?? false
        allowPublishForSubscriber = try container.decodeIfPresent(Bool.self, forKey: .allowPublishForSubscriber) ?? false
        allowPublishForClient = try container.decodeIfPresent(Bool.self, forKey: .allowPublishForClient) ?? false
        allowPresenceForSubscriber = try container.decodeIfPresent(Bool.self, forKey: .allowPresenceForSubscriber) ?? false
        allowHistoryForSubscriber = try container.decodeIfPresent(Bool.self, forKey: .allowHistoryForSubscriber) ?? false
    }
}

/// A named namespace: channels `name:rest` use its options.
public struct NamespaceConfiguration: Sendable, Codable, Hashable {
    public var name: String
    public var options: ChannelOptions

    public init(name: String, options: ChannelOptions = .init()) {
        self.name = name
        self.options = options
    }

    enum CodingKeys: String, CodingKey { case name }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        options = try ChannelOptions(from: decoder)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try options.encode(to: encoder)
    }
}
