import APIServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Storage
import SwitchboardCore
import Testing

/// Quotas as an API client meets them: 429 `quota_exceeded` past the limit, and `GET /usage`
/// showing the limits, what was used and when each starts again.
@Suite("Quotas through the API")
struct QuotaAPITests {
    @Test func aMessagePastTheDailyQuotaIs429AndUsageShowsTheQuota() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            let app = Application(
                router: APIApplication.buildRouter(dependencies: env.dependencies(settings: APISettings(quotas: QuotaLimits(messagesPerDay: 1)))),
                logger: TestEnvironment.logger)
            try await app.test(.router) { client in
                let first = try await client.execute(uri: "/api/v1/messages", method: .post, headers: .auth(key), body: jsonBody(["content": "hi"]))
                #expect(first.status == .accepted)
                let second = try await client.execute(uri: "/api/v1/messages", method: .post, headers: .auth(key), body: jsonBody(["content": "again"]))
                #expect(second.status == .tooManyRequests)
                #expect(second.errorCode == "quota_exceeded")
                #expect(second.errorMessage?.contains("resets at") == true)
                let usage = try await client.execute(uri: "/api/v1/usage", method: .get, headers: .auth(key))
                #expect(usage.status == .ok)
                let quota = try #require(usage.json["quota"] as? [String: Any])
                #expect(quota["messagesPerDay"] as? Int == 1)
                #expect(quota["messagesToday"] as? Int == 1)
                #expect(quota["tokensPerMonth"] is NSNull)
                #expect((quota["messagesResetAt"] as? String)?.contains("T00:00:00") == true, "the next UTC midnight")
            }
        }
    }
}
