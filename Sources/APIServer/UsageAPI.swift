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
            guard let date = try? Date(String(raw), strategy: .iso8601) else {
                throw SwitchboardError.invalidField("since", "must be an ISO 8601 time such as 2026-01-31T00:00:00Z")
            }
            since = date
        }
        let usage = dependencies.stores.usage
        async let totals = usage.usageTotals(userID: caller.user.id, since: since)
        async let recent = usage.usage(userID: caller.user.id, since: since, limit: limit)
        return try APIJSON.response(UsageJSON(totals: UsageTotalsJSON(try await totals), data: try await recent.map(UsageRecordJSON.init)))
    }
}

struct UsageJSON: Encodable {
    let totals: UsageTotalsJSON
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
