import Foundation
import Realtime
import Testing

@testable import Gateway

/// Live support's namespaces are built in, and a connection token's `caps` claim decides who
/// may subscribe to and publish on its channels.
@Suite struct LiveSupportRulesTests {
    let rules = ChannelRules(configuration: GatewayConfiguration())

    @Test func builtInNamespacesExistWithoutConfiguration() throws {
        let widget = try #require(rules.options(for: "widget:session.wgt_a.ses_b"))
        #expect(widget.historyEnabled && widget.forceRecovery && !widget.allowSubscribeForClient && !widget.allowPublishForSubscriber)
        let typing = try #require(rules.options(for: "widgettyping:wgt_a.ses_b"))
        #expect(!typing.historyEnabled && typing.allowPublishForSubscriber && !typing.allowSubscribeForClient)
        // Who is connected to a session (the console's "visitor online"): presence and join/leave.
        #expect(typing.presence && typing.joinLeave && typing.allowPresenceForSubscriber)
        #expect(!widget.presence)
    }

    @Test func aConfiguredNamespaceReplacesTheBuiltInOne() throws {
        var configuration = GatewayConfiguration()
        var options = ChannelOptions()
        options.historySize = 7
        options.historyTTL = 60
        configuration.namespaces = [NamespaceConfiguration(name: "widget", options: options)]
        #expect(ChannelRules(configuration: configuration).options(for: "widget:x")?.historySize == 7)
    }

    @Test func aVisitorMaySubscribeOnlyToItsOwnSessionChannels() throws {
        let caps = LiveSupportChannels.visitorCapabilities(publicID: "wgt_a", sessionID: "ses_1")
        let own = "widget:session.wgt_a.ses_1"
        let options = try #require(rules.options(for: own))
        #expect(rules.maySubscribeWithoutToken(channel: own, user: "visitor:ses_1", options: options, capabilities: caps))
        #expect(rules.maySubscribeWithoutToken(channel: "widgettyping:wgt_a.ses_1", user: "visitor:ses_1", options: options, capabilities: caps))
        #expect(!rules.maySubscribeWithoutToken(channel: "widget:session.wgt_a.ses_2", user: "visitor:ses_1", options: options, capabilities: caps))
        #expect(!rules.maySubscribeWithoutToken(channel: "widget:operators.1", user: "visitor:ses_1", options: options, capabilities: caps))
        #expect(!rules.maySubscribeWithoutToken(channel: own, user: "visitor:ses_1", options: options))
        #expect(ChannelRules.capabilities(caps, allow: "pub", on: "widgettyping:wgt_a.ses_1"))
        #expect(!ChannelRules.capabilities(caps, allow: "pub", on: own))
    }

    @Test func anOperatorMaySubscribeOnlyToTheWidgetsItOperates() throws {
        let caps = LiveSupportChannels.operatorCapabilities(widgets: [(id: 3, publicID: "wgt_a")])
        let options = try #require(rules.options(for: "widget:operators.3"))
        #expect(rules.maySubscribeWithoutToken(channel: "widget:operators.3", user: "user:9", options: options, capabilities: caps))
        #expect(!rules.maySubscribeWithoutToken(channel: "widget:operators.4", user: "user:9", options: options, capabilities: caps))
        #expect(rules.maySubscribeWithoutToken(channel: "widget:session.wgt_a.ses_1", user: "user:9", options: options, capabilities: caps))
        #expect(!rules.maySubscribeWithoutToken(channel: "widget:session.wgt_ab.ses_1", user: "user:9", options: options, capabilities: caps))
        #expect(ChannelRules.capabilities(caps, allow: "pub", on: "widgettyping:wgt_a.ses_7"))
        #expect(LiveSupportChannels.operatorCapabilities(widgets: []).isEmpty)
    }

    @Test func capsAreReadFromAVerifiedConnectionToken() throws {
        let minted = RealtimeTokenMinter(secret: "s3cret", ttl: 60).mint(
            subject: "visitor:ses_1", capabilities: LiveSupportChannels.visitorCapabilities(publicID: "wgt_a", sessionID: "ses_1"))
        let claims = try JWT.verify(minted.token, secrets: ["s3cret"], now: Int64(Date().timeIntervalSince1970))
        let token = try ConnectionToken(claims: claims)
        #expect(token.user == "visitor:ses_1" && token.expiresAt != nil)
        #expect(token.capabilities == minted.capabilities)
        #expect(throws: JWT.Failure.self) { try JWT.verify(minted.token, secrets: ["other"], now: Int64(Date().timeIntervalSince1970)) }
    }
}
