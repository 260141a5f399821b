import APIServer
import Foundation
import HTTPTypes
import HummingbirdTesting
import Storage
import SwitchboardCore
import Testing

/// What the workers recorded about a user's provider calls, as that user (and only they) sees it.
@Suite("Usage")
struct UsageTests {
    @Test func aUserSeesTheirOwnUsageWithTotals() async throws {
        try await TestEnvironment.with { env in
            let (alice, aliceKey) = try await env.makeUser()
            let (bob, bobKey) = try await env.makeUser()
            for (tokens, latency) in [(10, 100), (20, 200)] {
                try await env.stores.usage.recordUsage([UsageCall(
                    userID: alice.id, messageID: nil, provider: "openai-compatible", model: "smollm2-135m",
                    promptTokens: tokens, completionTokens: tokens / 2, latencyMs: latency)])
            }
            try await env.stores.usage.recordUsage([UsageCall(
                userID: bob.id, messageID: nil, provider: "openai-compatible", model: "other", promptTokens: 999,
                completionTokens: 999, latencyMs: 1)])
            try await env.application().test(.router) { client in
                let mine = try await client.execute(uri: "/api/v1/usage", method: .get, headers: .auth(aliceKey))
                #expect(mine.status == .ok)
                let totals = try #require(mine.json["totals"] as? [String: Any])
                #expect(totals["requests"] as? Int == 2)
                #expect(totals["promptTokens"] as? Int == 30)
                #expect(totals["completionTokens"] as? Int == 15)
                let records = try #require(mine.json["data"] as? [[String: Any]])
                #expect(records.map { $0["latencyMs"] as? Int } == [200, 100])  // newest first
                #expect(records.allSatisfy { $0["model"] as? String == "smollm2-135m" })

                let limited = try await client.execute(uri: "/api/v1/usage?limit=1", method: .get, headers: .auth(aliceKey))
                #expect((limited.json["data"] as? [[String: Any]])?.count == 1)
                #expect((limited.json["totals"] as? [String: Any])?["requests"] as? Int == 2)
                let future = try await client.execute(uri: "/api/v1/usage?since=2999-01-01T00:00:00Z", method: .get, headers: .auth(aliceKey))
                #expect((future.json["totals"] as? [String: Any])?["requests"] as? Int == 0)

                let theirs = try await client.execute(uri: "/api/v1/usage", method: .get, headers: .auth(bobKey))
                #expect((theirs.json["totals"] as? [String: Any])?["promptTokens"] as? Int == 999)

                for query in ["since=yesterday", "limit=0", "limit=abc"] {
                    let bad = try await client.execute(uri: "/api/v1/usage?\(query)", method: .get, headers: .auth(aliceKey))
                    #expect(bad.status == .badRequest, "\(query)")
                    #expect(bad.errorCode == "invalid_field")
                }
            }
        }
    }
}
