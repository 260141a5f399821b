import Testing

@testable import Gateway

/// How a subscribe request is served, without a node: token overrides, recoverable/positioned,
/// join/leave, where recovery starts, what a history read recovered, and the subscribe result.
@Suite struct SubscriptionPlanTests {
    var history: ChannelOptions {
        var options = ChannelOptions()
        options.historySize = 10
        options.historyTTL = 60
        return options
    }

    func request(_ configure: (inout SubscribeRequest) -> Void = { _ in }) -> SubscribeRequest {
        var request = SubscribeRequest(channel: "chat:a")
        configure(&request)
        return request
    }

    @Test func recoveryAndPositioningNeedHistory() {
        var noHistory = ChannelOptions()
        noHistory.forceRecovery = true
        noHistory.forcePositioning = true
        let without = SubscriptionPlan(namespaceOptions: noHistory, override: nil, request: request { $0.recoverable = true }, serverSide: true)
        #expect(!without.recoverable && !without.positioned)

        let plain = SubscriptionPlan(namespaceOptions: history, override: nil, request: request(), serverSide: false)
        #expect(!plain.recoverable && !plain.positioned)
        let asked = SubscriptionPlan(namespaceOptions: history, override: nil, request: request { $0.recoverable = true }, serverSide: false)
        #expect(asked.recoverable && asked.positioned)
        let serverSide = SubscriptionPlan(namespaceOptions: history, override: nil, request: request(), serverSide: true)
        #expect(serverSide.recoverable && serverSide.positioned)
        let positionedOnly = SubscriptionPlan(namespaceOptions: history, override: nil, request: request { $0.positioned = true }, serverSide: false)
        #expect(!positionedOnly.recoverable && positionedOnly.positioned)
        var forced = history
        forced.forcePositioning = true
        let forcedPlan = SubscriptionPlan(namespaceOptions: forced, override: nil, request: request(), serverSide: false)
        #expect(!forcedPlan.recoverable && forcedPlan.positioned)
    }

    @Test func theTokensOverridesWin() {
        var options = history
        options.presence = true
        let override = ["presence": false, "join_leave": true, "force_push_join_leave": true, "force_recovery": true, "force_positioning": true]
        let plan = SubscriptionPlan(namespaceOptions: options, override: override, request: request(), serverSide: false)
        #expect(!plan.options.presence)
        #expect(plan.options.joinLeave && plan.joinLeave)
        #expect(plan.options.forceRecovery && plan.recoverable)
        #expect(plan.options.forcePositioning && plan.positioned)
    }

    @Test func joinLeaveNeedsTheOptionAndAskingOrForcing() {
        var options = ChannelOptions()
        #expect(!SubscriptionPlan(namespaceOptions: options, override: nil, request: request { $0.join_leave = true }, serverSide: false).joinLeave)
        options.joinLeave = true
        #expect(!SubscriptionPlan(namespaceOptions: options, override: nil, request: request(), serverSide: false).joinLeave)
        #expect(SubscriptionPlan(namespaceOptions: options, override: nil, request: request { $0.join_leave = true }, serverSide: false).joinLeave)
        options.forcePushJoinLeave = true
        #expect(SubscriptionPlan(namespaceOptions: options, override: nil, request: request(), serverSide: false).joinLeave)
    }

    @Test func recoveryStartsFromTheRequestedPositionWithAnEpoch() {
        let recovering = SubscriptionPlan(
            namespaceOptions: history, override: nil,
            request: request { $0.recoverable = true; $0.recover = true; $0.epoch = "e"; $0.offset = 4; $0.flag = 3 }, serverSide: false)
        #expect(recovering.wasRecovering)
        #expect(recovering.recoverySince == StreamPosition(offset: 4, epoch: "e"))
        #expect(recovering.rejectsUnrecovered)

        let noEpoch = SubscriptionPlan(namespaceOptions: history, override: nil, request: request { $0.recoverable = true; $0.recover = true }, serverSide: false)
        #expect(noEpoch.wasRecovering && noEpoch.recoverySince == nil && !noEpoch.rejectsUnrecovered)
        let fromStart = SubscriptionPlan(
            namespaceOptions: history, override: nil, request: request { $0.recoverable = true; $0.recover = true; $0.epoch = "e" }, serverSide: false)
        #expect(fromStart.recoverySince == StreamPosition(offset: 0, epoch: "e"))
        let notRecoverable = SubscriptionPlan(
            namespaceOptions: history, override: nil, request: request { $0.recover = true; $0.epoch = "e"; $0.flag = 1 }, serverSide: false)
        #expect(!notRecoverable.wasRecovering && notRecoverable.recoverySince == nil && !notRecoverable.rejectsUnrecovered)
    }

    @Test func aRecoveryIsCompleteOnlyWithoutAGapInTheSameEpoch() {
        let since = StreamPosition(offset: 2, epoch: "e")
        func publications(_ offsets: UInt64...) -> [Publication] { offsets.map { Publication(offset: $0, data: "\($0)") } }

        let complete = SubscriptionPlan.recovery(since: since, from: HistoryResult(publications: publications(3, 4), position: .init(offset: 4, epoch: "e")))
        #expect(complete.recovered && complete.publications.map(\.offset) == [3, 4])
        let gap = SubscriptionPlan.recovery(since: since, from: HistoryResult(publications: publications(4), position: .init(offset: 4, epoch: "e")))
        #expect(!gap.recovered && gap.publications.map(\.offset) == [4])
        let nothingNew = SubscriptionPlan.recovery(since: since, from: HistoryResult(publications: [], position: .init(offset: 2, epoch: "e")))
        #expect(nothingNew.recovered && nothingNew.publications.isEmpty)
        let lost = SubscriptionPlan.recovery(since: since, from: HistoryResult(publications: [], position: .init(offset: 5, epoch: "e")))
        #expect(!lost.recovered)
        let otherEpoch = SubscriptionPlan.recovery(since: since, from: HistoryResult(publications: publications(3), position: .init(offset: 3, epoch: "f")))
        #expect(!otherEpoch.recovered && otherEpoch.publications.isEmpty)
    }

    @Test func theResultSaysWhatTheClientGot() {
        let recovering = SubscriptionPlan(
            namespaceOptions: history, override: nil,
            request: request { $0.recoverable = true; $0.recover = true; $0.epoch = "e"; $0.offset = 2 }, serverSide: false)
        let result = recovering.result(
            position: StreamPosition(offset: 3, epoch: "e"), publications: [Publication(offset: 3, data: "3")], recovered: true,
            expiresAt: 1060, now: 1000, data: #"{"d":1}"#)
        #expect(
            result == #"{"expires":true,"ttl":60,"recoverable":true,"positioned":true,"epoch":"e","offset":3,"publications":[{"data":3,"offset":3}],"was_recovering":true,"recovered":true,"data":{"d":1}}"#)

        let plain = SubscriptionPlan(namespaceOptions: ChannelOptions(), override: nil, request: request(), serverSide: false)
        #expect(plain.result(position: nil, publications: [], recovered: false, expiresAt: nil, now: 1000, data: nil) == "{}")
        let positioned = SubscriptionPlan(namespaceOptions: history, override: nil, request: request { $0.positioned = true }, serverSide: false)
        #expect(
            positioned.result(position: StreamPosition(offset: 0, epoch: "e"), publications: [], recovered: false, expiresAt: 900, now: 1000, data: nil)
                == #"{"expires":true,"ttl":0,"positioned":true,"epoch":"e"}"#)
        #expect(SubscriptionPlan.offset(position: StreamPosition(offset: 3, epoch: "e"), publications: [Publication(offset: 5, data: "5")]) == 5)
    }
}
