import Channels
import Foundation
import Queue
import Storage
import SwitchboardCore
import Testing
import TurnTestSupport
import Turns

/// Per-user quotas, checked where every channel's messages enter: past one, nothing is stored or
/// queued and the answer says when the window starts again.
@Suite("Quotas")
struct QuotaTests {
    static func intake(_ env: TurnTestEnvironment, _ quotas: QuotaLimits) -> ChannelIntake {
        ChannelIntake(stores: env.stores, jobs: JobQueue(client: env.redis), redis: env.redis, quotas: quotas)
    }

    static func send(_ intake: ChannelIntake, _ owner: Int64, _ text: String, id: String? = nil) async throws -> ChannelIntake.Accepted {
        try await intake.accept(
            InboundMessage(ownerID: owner, channel: id == nil ? .web : .whatsapp, content: text, chat: id == nil ? .new(title: nil) : .thread(key: "k", title: nil), externalID: id),
            logger: TurnTestEnvironment.logger)
    }

    @Test func theDailyMessageQuotaRefusesTheNextMessageAndStoresNothing() async throws {
        try await TurnTestEnvironment.with { env in
            let user = try await env.stores.users.createUser(email: "q\(UInt32.random(in: 0...UInt32.max))@example.com", name: "q", role: .user)
            let intake = Self.intake(env, QuotaLimits(messagesPerDay: 2))
            _ = try await Self.send(intake, user.id, "one", id: "w1")
            _ = try await Self.send(intake, user.id, "two")
            // A channel's retry of a message already stored is answered, not counted again.
            #expect(try await Self.send(intake, user.id, "one", id: "w1").isDuplicate)
            let error = await #expect(throws: SwitchboardError.self) { _ = try await Self.send(intake, user.id, "three") }
            #expect(error?.status == 429)
            #expect(error?.code == .quotaExceeded)
            #expect(error?.message.contains("resets at \(QuotaWindows(now: Date()).nextDay.formatted(.iso8601))") == true)
            #expect(try await env.queuedTurnIDs().count == 2, "the refused message queued nothing")
            #expect(try await env.stores.quotas.messageCount(userID: user.id, since: QuotaWindows(now: Date()).dayStart) == 2)

            // The user's own quota overrides the default; another user is not affected.
            try await env.stores.quotas.setQuota(userID: user.id, limits: QuotaLimits(messagesPerDay: 3))
            _ = try await Self.send(intake, user.id, "three")
            let other = try await env.stores.users.createUser(email: "o\(UInt32.random(in: 0...UInt32.max))@example.com", name: "o", role: .user)
            _ = try await Self.send(intake, other.id, "mine")
        }
    }

    @Test func theMonthlyTokenQuotaCountsRecordedProviderTokens() async throws {
        try await TurnTestEnvironment.with { env in
            let user = try await env.stores.users.createUser(email: "t\(UInt32.random(in: 0...UInt32.max))@example.com", name: "t", role: .user)
            let intake = Self.intake(env, QuotaLimits(tokensPerMonth: 100))
            _ = try await Self.send(intake, user.id, "first")
            try await env.stores.usage.recordUsage([
                UsageCall(userID: user.id, messageID: nil, provider: "p", model: "m", promptTokens: 60, completionTokens: 40, latencyMs: 5),
            ])
            let error = await #expect(throws: SwitchboardError.self) { _ = try await Self.send(intake, user.id, "second") }
            #expect(error?.code == .quotaExceeded)
            #expect(error?.message.contains("100 provider tokens a month") == true)
            // No limit at all: nothing is refused.
            _ = try await Self.send(Self.intake(env, .unlimited), user.id, "second")
        }
    }

    @Test func windowsAreUTCDaysAndMonths() {
        let now = Date(timeIntervalSince1970: 1_764_892_800 + 3_600 * 13)  // 2025-12-05T13:00:00Z
        let windows = QuotaWindows(now: now)
        #expect(windows.dayStart.formatted(.iso8601) == "2025-12-05T00:00:00Z")
        #expect(windows.nextDay.formatted(.iso8601) == "2025-12-06T00:00:00Z")
        #expect(windows.monthStart.formatted(.iso8601) == "2025-12-01T00:00:00Z")
        #expect(windows.nextMonth.formatted(.iso8601) == "2026-01-01T00:00:00Z")
        #expect(QuotaLimits(messagesPerDay: 5, tokensPerMonth: 9).overridden(by: QuotaLimits(messagesPerDay: 1)) == QuotaLimits(messagesPerDay: 1, tokensPerMonth: 9))
    }
}
