/// The gateway channels of live support: their names, the namespaces that hold them (with the
/// options the gateway's built-in defaults and the example configuration give them), and which
/// channels a visitor's and an operator's connection token allow.
import Foundation

/// Options of one namespace as the gateway's configuration spells them (a subset of Centrifugo's).
public struct RealtimeNamespace: Sendable, Hashable {
    public var name: String
    /// Publications kept for recovery; 0 keeps none.
    public var historySize: Int
    /// Seconds the history is kept after the last publication.
    public var historyTTL: Int
    public var forceRecovery: Bool
    /// Subscribers may publish (typing indicators).
    public var allowPublishForSubscriber: Bool
    /// Subscribers are tracked (presence, join/leave pushes) and may ask who is there.
    public var presence: Bool

    public init(
        name: String, historySize: Int = 0, historyTTL: Int = 0, forceRecovery: Bool = false, allowPublishForSubscriber: Bool = false,
        presence: Bool = false
    ) {
        self.name = name
        self.historySize = historySize
        self.historyTTL = historyTTL
        self.forceRecovery = forceRecovery
        self.allowPublishForSubscriber = allowPublishForSubscriber
        self.presence = presence
    }

    public var keepsHistory: Bool { historySize > 0 && historyTTL > 0 }
}

/// Live support's channels.
public enum LiveSupportChannels {
    /// Session and operator channels: history for recovery, no client may publish.
    public static let widgetNamespace = RealtimeNamespace(name: "widget", historySize: 100, historyTTL: 86_400, forceRecovery: true)
    /// Typing indicators: subscribers publish, nothing is kept; presence and join/leave tell
    /// each side whether the other is connected (the console's "visitor online").
    public static let typingNamespace = RealtimeNamespace(name: "widgettyping", allowPublishForSubscriber: true, presence: true)
    public static let namespaces = [widgetNamespace, typingNamespace]

    /// `widget:session.{publicId}.{sessionId}`: the session's messages and mode changes.
    public static func session(publicID: String, sessionID: String) -> String { "widget:session.\(publicID).\(sessionID)" }
    /// `widget:operators.{widgetId}`: notifications for the widget's operators.
    public static func operators(widgetID: Int64) -> String { "widget:operators.\(widgetID)" }
    /// `widgettyping:{publicId}.{sessionId}`: typing indicators of both sides.
    public static func typing(publicID: String, sessionID: String) -> String { "widgettyping:\(publicID).\(sessionID)" }

    /// What a visitor's token allows: its own session's two channels.
    public static func visitorCapabilities(publicID: String, sessionID: String) -> [RealtimeCapability] {
        [
            RealtimeCapability(channels: [session(publicID: publicID, sessionID: sessionID)], allow: ["sub", "hst"]),
            RealtimeCapability(channels: [typing(publicID: publicID, sessionID: sessionID)], allow: ["sub", "pub"]),
        ]
    }

    /// What an operator's token allows: the notifications of each widget it operates, and every
    /// session and typing channel of those widgets (wildcards).
    public static func operatorCapabilities(widgets: [(id: Int64, publicID: String)]) -> [RealtimeCapability] {
        guard !widgets.isEmpty else { return [] }
        return [
            RealtimeCapability(channels: widgets.map { operators(widgetID: $0.id) }, allow: ["sub", "hst"]),
            RealtimeCapability(channels: widgets.map { "widget:session.\($0.publicID).*" }, match: .wildcard, allow: ["sub", "hst"]),
            RealtimeCapability(channels: widgets.map { "widgettyping:\($0.publicID).*" }, match: .wildcard, allow: ["sub", "pub"]),
        ]
    }
}

/// One entry of a connection token's `caps` claim (Centrifugo's channel capabilities): the
/// channels it names (exactly, or as `*` wildcards) and what it allows on them (`sub`, `pub`,
/// `hst`, `prs`). The first entry that names a channel decides.
public struct RealtimeCapability: Sendable, Hashable, Codable {
    public enum Match: String, Sendable, Hashable, Codable { case exact, wildcard }
    public var channels: [String]
    public var match: Match?
    public var allow: [String]

    public init(channels: [String], match: Match? = nil, allow: [String]) {
        self.channels = channels
        self.match = match
        self.allow = allow
    }

    /// Whether this entry names `channel`.
    public func names(_ channel: String) -> Bool {
        switch match ?? .exact {
        case .exact: return channels.contains(channel)
        case .wildcard: return channels.contains { Self.wildcard($0, matches: channel) }
        }
    }

    /// `*` stands for any run of characters.
    static func wildcard(_ pattern: String, matches text: String) -> Bool {
        let parts = pattern.split(separator: "*", omittingEmptySubsequences: false)
        guard parts.count > 1 else { return pattern == text }
        var rest = Substring(text)
        guard rest.hasPrefix(parts[0]) else { return false }
        rest = rest.dropFirst(parts[0].count)
        for (index, part) in parts.enumerated().dropFirst() {
            if index == parts.count - 1 { return part.isEmpty || rest.hasSuffix(part) }
            guard !part.isEmpty else { continue }
            guard let range = rest.range(of: part) else { return false }
            rest = rest[range.upperBound...]
        }
        return true
    }

    /// What the first entry naming `channel` allows (nil: no entry names it).
    public static func allowed(_ capabilities: [RealtimeCapability], channel: String) -> Set<String>? {
        capabilities.first { $0.names(channel) }.map { Set($0.allow) }
    }
}
