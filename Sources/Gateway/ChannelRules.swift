import Realtime

/// Channel naming rules: `namespace:rest` picks a namespace's options, `$` marks a private channel
/// (a subscription token is required), `#` limits a channel to the users listed after it
/// (`dialog#42,43`). Live support's namespaces (`widget`, `widgettyping`) are built in; a
/// namespace of the same name in the configuration replaces the built-in one. A connection
/// token's `caps` claim grants subscribing (`sub`), publishing (`pub`) and history (`hst`) on
/// the channels it names, beyond what the namespace allows everyone.
struct ChannelRules: Sendable {
    let defaults: ChannelOptions
    let namespaces: [String: ChannelOptions]
    let maxLength: Int

    init(configuration: GatewayConfiguration) {
        defaults = configuration.channelDefaults
        var namespaces: [String: ChannelOptions] = [:]
        for builtIn in Self.builtInNamespaces { namespaces[builtIn.name] = builtIn.options }
        for namespace in configuration.namespaces { namespaces[namespace.name] = namespace.options }
        self.namespaces = namespaces
        maxLength = configuration.channelMaxLength
    }

    /// The namespaces every gateway has unless its configuration names them itself.
    static let builtInNamespaces: [NamespaceConfiguration] = LiveSupportChannels.namespaces.map { namespace in
        var options = ChannelOptions()
        options.historySize = namespace.historySize
        options.historyTTL = namespace.historyTTL
        options.forceRecovery = namespace.forceRecovery
        options.allowPublishForSubscriber = namespace.allowPublishForSubscriber
        options.presence = namespace.presence
        options.joinLeave = namespace.presence
        options.allowPresenceForSubscriber = namespace.presence
        return NamespaceConfiguration(name: namespace.name, options: options)
    }

    /// The options for a channel: nil when it names a namespace that does not exist (error 102).
    func options(for channel: String) -> ChannelOptions? {
        guard let namespace = Self.namespace(of: channel) else { return defaults }
        return namespaces[namespace]
    }

    static func namespace(of channel: String) -> String? {
        // Over the UTF-8 bytes, as Centrifugo reads a name (and without walking grapheme clusters).
        let utf8 = channel.utf8
        var start = utf8.startIndex
        if utf8.first == UInt8(ascii: "$") { start = utf8.index(after: start) }
        guard let colon = utf8[start...].firstIndex(of: UInt8(ascii: ":")) else { return nil }
        return String(channel[start..<colon])
    }

    static func isPrivate(_ channel: String) -> Bool { channel.hasPrefix("$") }

    /// The users allowed in a `#` channel, or nil for an ordinary channel.
    static func allowedUsers(_ channel: String) -> [Substring]? {
        guard let hash = channel.utf8.lastIndex(of: UInt8(ascii: "#")) else { return nil }
        return channel[channel.utf8.index(after: hash)...].split(separator: ",")
    }

    /// A name the gateway refuses outright (error 107): empty or too long.
    func isValidName(_ channel: String) -> Bool {
        !channel.isEmpty && channel.utf8.count <= maxLength
    }

    /// Whether a client may subscribe without a subscription token.
    func maySubscribeWithoutToken(
        channel: String, user: String, options: ChannelOptions, capabilities: [RealtimeCapability] = []
    ) -> Bool {
        if Self.isPrivate(channel) { return false }
        if Self.capabilities(capabilities, allow: "sub", on: channel) { return true }
        if let users = Self.allowedUsers(channel) {
            return !user.isEmpty && users.contains(Substring(user))
        }
        if user.isEmpty { return options.allowSubscribeForAnonymous }
        return options.allowSubscribeForClient
    }

    /// Whether the token's capabilities allow `action` on `channel`.
    static func capabilities(_ capabilities: [RealtimeCapability], allow action: String, on channel: String) -> Bool {
        RealtimeCapability.allowed(capabilities, channel: channel)?.contains(action) ?? false
    }
}
