import Foundation
import Hummingbird
import Storage
import SwitchboardCore

/// `GET /api/v1/usage`: the caller's AI provider calls (tokens, latency, model), as workers
/// recorded them per turn and per pipeline step, with totals.
struct UsageAPI: Sendable {
    let dependencies: APIDependencies

    func get(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let limit = try PublicAPI(dependencies: dependencies).pageSize(request)
        var since: Date?
        if let raw = request.uri.queryParameters["since"] {
            guard let date = APITime.date(String(raw)) else {
                throw SwitchboardError.invalidField("since", "must be an ISO 8601 time such as 2026-01-31T00:00:00Z")
            }
            since = date
        }
        let usage = dependencies.stores.usage
        async let totals = usage.usageTotals(userID: caller.user.id, since: since)
        async let recent = usage.usage(userID: caller.user.id, since: since, limit: limit)
        async let quota = quota(userID: caller.user.id)
        return try APIJSON.response(UsageJSON(
            totals: UsageTotalsJSON(try await totals), quota: try await quota, data: try await recent.map(UsageRecordJSON.init)))
    }

    /// The caller's quotas (their own, else the configured ones), what they used of them and when
    /// each starts again.
    func quota(userID: Int64, now: Date = Date()) async throws -> QuotaJSON {
        let stores = dependencies.stores
        let limits = dependencies.settings.quotas.overridden(by: try await stores.quotas.quota(userID: userID))
        let windows = QuotaWindows(now: now)
        async let messages = stores.quotas.messageCount(userID: userID, since: windows.dayStart)
        async let month = stores.usage.usageTotals(userID: userID, since: windows.monthStart)
        let tokens = try await month
        return QuotaJSON(
            messagesPerDay: limits.messagesPerDay.flatMap { $0 > 0 ? $0 : nil }, messagesToday: try await messages,
            messagesResetAt: windows.nextDay, tokensPerMonth: limits.tokensPerMonth.flatMap { $0 > 0 ? $0 : nil },
            tokensThisMonth: tokens.promptTokens + tokens.completionTokens, tokensResetAt: windows.nextMonth)
    }
}

/// A user's quotas: null limits mean none.
struct QuotaJSON: Encodable {
    let messagesPerDay: Int?
    let messagesToday: Int
    let messagesResetAt: Date
    let tokensPerMonth: Int?
    let tokensThisMonth: Int
    let tokensResetAt: Date

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(messagesPerDay, forKey: .messagesPerDay)
        try c.encode(messagesToday, forKey: .messagesToday)
        try c.encode(messagesResetAt, forKey: .messagesResetAt)
        try c.encode(tokensPerMonth, forKey: .tokensPerMonth)
        try c.encode(tokensThisMonth, forKey: .tokensThisMonth)
        try c.encode(tokensResetAt, forKey: .tokensResetAt)
    }

    enum CodingKeys: String, CodingKey {
        case messagesPerDay, messagesToday, messagesResetAt, tokensPerMonth, tokensThisMonth, tokensResetAt
    }
}

struct UsageJSON: Encodable {
    let totals: UsageTotalsJSON
    let quota: QuotaJSON
    /// Newest first, at most `limit`.
    let data: [UsageRecordJSON]
}

struct UsageTotalsJSON: Encodable {
    let requests: Int
    let promptTokens: Int
    let completionTokens: Int

    init(_ totals: UsageTotals) {
        requests = totals.requests
        promptTokens = totals.promptTokens
        completionTokens = totals.completionTokens
    }
}

struct UsageRecordJSON: Encodable {
    let messageId: Int64?
    let provider: String
    let model: String
    let promptTokens: Int
    let completionTokens: Int
    let latencyMs: Int
    let createdAt: Date

    init(_ record: UsageRecord) {
        messageId = record.messageID
        provider = record.provider
        model = record.model
        promptTokens = record.promptTokens
        completionTokens = record.completionTokens
        latencyMs = record.latencyMs
        createdAt = record.createdAt
    }
}
