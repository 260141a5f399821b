import Foundation
import Testing

@testable import Gateway

@Suite struct ChannelRulesTests {
    let rules: ChannelRules = {
        var configuration = GatewayConfiguration()
        var open = ChannelOptions()
        open.allowSubscribeForClient = true
        var anonymous = ChannelOptions()
        anonymous.allowSubscribeForAnonymous = true
        configuration.namespaces = [NamespaceConfiguration(name: "chat", options: open), NamespaceConfiguration(name: "public", options: anonymous)]
        configuration.channelMaxLength = 20
        return ChannelRules(configuration: configuration)
    }()

    @Test func resolvesNamespaces() {
        #expect(rules.options(for: "chat:room")?.allowSubscribeForClient == true)
        #expect(rules.options(for: "$chat:room")?.allowSubscribeForClient == true)
        #expect(rules.options(for: "plain")?.allowSubscribeForClient == false)
        #expect(rules.options(for: "unknown:room") == nil)
        #expect(rules.options(for: "chat:rööm🙂")?.allowSubscribeForClient == true)
        #expect(rules.options(for: "čhat:room") == nil)
    }

    @Test func privateChannelsNeedAToken() throws {
        let options = try #require(rules.options(for: "$chat:room"))
        #expect(!rules.maySubscribeWithoutToken(channel: "$chat:room", user: "1", options: options))
    }

    @Test func userLimitedChannelsAdmitOnlyTheirUsers() throws {
        let options = try #require(rules.options(for: "chat:dialog#42,43"))
        #expect(rules.maySubscribeWithoutToken(channel: "chat:dialog#42,43", user: "42", options: options))
        #expect(rules.maySubscribeWithoutToken(channel: "chat:dialog#42,43", user: "43", options: options))
        #expect(!rules.maySubscribeWithoutToken(channel: "chat:dialog#42,43", user: "4", options: options))
        #expect(!rules.maySubscribeWithoutToken(channel: "chat:dialog#42,43", user: "", options: options))
    }

    @Test func anonymousUsersNeedTheAnonymousOption() throws {
        #expect(!rules.maySubscribeWithoutToken(channel: "chat:a", user: "", options: try #require(rules.options(for: "chat:a"))))
        #expect(rules.maySubscribeWithoutToken(channel: "public:a", user: "", options: try #require(rules.options(for: "public:a"))))
        #expect(!rules.maySubscribeWithoutToken(channel: "public:a", user: "1", options: try #require(rules.options(for: "public:a"))))
    }

    @Test func limitsNameLength() {
        #expect(rules.isValidName("chat:short"))
        #expect(!rules.isValidName(""))
        #expect(!rules.isValidName(String(repeating: "x", count: 21)))
    }

    @Test func decodesTheGatewaySection() throws {
        let json = """
            {"port": 9000, "token_secret": "s", "allowed_origins": "https://a.example, https://b.example",
             "presence": true, "namespaces": [{"name": "widget", "history_size": 100, "history_ttl": "10m", "force_recovery": true}]}
            """
        let configuration = try JSONDecoder().decode(GatewayConfiguration.self, from: Data(json.utf8))
        #expect(configuration.port == 9000)
        #expect(configuration.pingInterval == 25)
        #expect(configuration.allowedOrigins == ["https://a.example", "https://b.example"])
        #expect(configuration.channelDefaults.presence)
        #expect(configuration.namespaces.first?.options.historyTTL == 600)
        #expect(configuration.namespaces.first?.options.forceRecovery == true)
        #expect(configuration.fanoutIOUring)
    }

    /// `socket_layer`: the gateway's own loops unless `nio` is asked for; another value is refused.
    @Test func decodesSocketLayer() throws {
        #expect(try JSONDecoder().decode(GatewayConfiguration.self, from: Data("{}".utf8)).socketLayer == .own)
        #expect(try JSONDecoder().decode(GatewayConfiguration.self, from: Data(#"{"socket_layer": "nio"}"#.utf8)).socketLayer == .nio)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(GatewayConfiguration.self, from: Data(#"{"socket_layer": "epoll"}"#.utf8))
        }
    }

    /// `fanout_io_uring` is a boolean: `false` turns the batched sends off, anything else is refused.
    @Test func decodesFanoutIOUring() throws {
        let off = try JSONDecoder().decode(GatewayConfiguration.self, from: Data(#"{"fanout_io_uring": false}"#.utf8))
        #expect(!off.fanoutIOUring)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(GatewayConfiguration.self, from: Data(#"{"fanout_io_uring": "sometimes"}"#.utf8))
        }
    }

    @Test func checksOrigins() {
        #expect(OriginCheck.allows(origin: nil, host: "gw:8000", allowed: []))
        #expect(OriginCheck.allows(origin: "http://gw:8000", host: "gw:8000", allowed: []))
        #expect(!OriginCheck.allows(origin: "http://evil.example", host: "gw:8000", allowed: []))
        #expect(OriginCheck.allows(origin: "https://app.example", host: "gw", allowed: ["https://app.example"]))
        #expect(OriginCheck.allows(origin: "https://x.app.example", host: "gw", allowed: ["https://*.app.example"]))
        #expect(!OriginCheck.allows(origin: "https://evil.example", host: "gw", allowed: ["https://app.example"]))
        #expect(OriginCheck.allows(origin: "https://evil.example", host: "gw", allowed: ["*"]))
    }
}
