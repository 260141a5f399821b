import APIServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Storage
import SwitchboardCore
import Testing

/// The error answers of routes whose happy path is tested elsewhere: rule edits and deletes,
/// renames that clash, the per-user rule limit, patterns the rule engine refuses, and bad paging.
@Suite("Error answers")
struct ErrorAnswerTests {
    @Test func rulesAreEditedAndDeletedByTheirOwnerOnly() async throws {
        try await TestEnvironment.with { env in
            let (_, alice) = try await env.makeUser()
            let (_, bob) = try await env.makeUser()
            try await env.application().test(.router) { client in
                let topic = try await client.execute(uri: "/api/v1/topics", method: .post, headers: .auth(alice), body: jsonBody(["name": "billing"]))
                let topicID = try #require(topic.json["id"] as? Int)
                let rule = try await client.execute(
                    uri: "/api/v1/topics/\(topicID)/rules", method: .post, headers: .auth(alice), body: jsonBody(["kind": "keyword", "pattern": "refund"]))
                #expect(rule.status == .created)
                let ruleURI = "/api/v1/topics/\(topicID)/rules/\(try #require(rule.json["id"] as? Int))"

                let edited = try await client.execute(
                    uri: ruleURI, method: .patch, headers: .auth(alice), body: jsonBody(["pattern": "refunds?", "priority": 7, "enabled": false]))
                #expect(edited.status == .ok)
                #expect(edited.json["pattern"] as? String == "refunds?")
                #expect(edited.json["priority"] as? Int == 7)
                #expect(edited.json["enabled"] as? Bool == false)
                let badPriority = try await client.execute(uri: ruleURI, method: .patch, headers: .auth(alice), body: jsonBody(["priority": 5000]))
                #expect(badPriority.status == .badRequest)
                #expect(badPriority.errorMessage?.contains("priority") == true)

                for method in [HTTPRequest.Method.patch, .delete] {
                    let foreign = try await client.execute(uri: ruleURI, method: method, headers: .auth(bob), body: method == .patch ? jsonBody(["priority": 1]) : nil)
                    #expect(foreign.status == .notFound, "\(method) of another user's rule")
                }
                #expect(try await client.execute(uri: ruleURI, method: .delete, headers: .auth(alice)).status == .noContent)
                #expect(try await client.execute(uri: ruleURI, method: .delete, headers: .auth(alice)).status == .notFound)
                #expect(try await client.execute(uri: "/api/v1/topics/\(topicID)/rules/abc", method: .delete, headers: .auth(alice)).status == .notFound)
            }
        }
    }

    @Test func renamingATopicOntoAnotherOfItsOwnersIsAConflict() async throws {
        try await TestEnvironment.with { env in
            let (_, alice) = try await env.makeUser()
            try await env.application().test(.router) { client in
                _ = try await client.execute(uri: "/api/v1/topics", method: .post, headers: .auth(alice), body: jsonBody(["name": "billing"]))
                let other = try await client.execute(uri: "/api/v1/topics", method: .post, headers: .auth(alice), body: jsonBody(["name": "shipping"]))
                let clash = try await client.execute(
                    uri: "/api/v1/topics/\(try #require(other.json["id"] as? Int))", method: .patch, headers: .auth(alice), body: jsonBody(["name": "Billing"]))
                #expect(clash.status == .conflict)
                #expect(clash.errorCode == "conflict")
            }
        }
    }

    @Test func patternsTheRuleEngineRefusesAndTheRuleLimitAreAnsweredAsSuch() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            try await env.application().test(.router) { client in
                let topic = try await client.execute(uri: "/api/v1/topics", method: .post, headers: .auth(key), body: jsonBody(["name": "t"]))
                let topicID = try #require(topic.json["id"] as? Int)
                for pattern in [#"(\w+)\s\1"#, "(?<!no )refund", "([unclosed"] {
                    let refused = try await client.execute(
                        uri: "/api/v1/topics/\(topicID)/rules", method: .post, headers: .auth(key), body: jsonBody(["kind": "regex", "pattern": pattern]))
                    #expect(refused.status == .badRequest, "\(pattern)")
                    #expect(refused.errorCode == "invalid_field")
                    #expect(refused.errorMessage?.contains("pattern") == true)
                }
                // 600 thumbs with a skin tone: 600 Characters, but 1,200 code points, past the column's
                // 1,000. Refused as too long, never a database error.
                let toned = String(repeating: "\u{1F44D}\u{1F3FB}", count: 600)
                let tooLong = try await client.execute(
                    uri: "/api/v1/topics/\(topicID)/rules", method: .post, headers: .auth(key), body: jsonBody(["kind": "keyword", "pattern": toned]))
                #expect(tooLong.status == .badRequest)
                #expect(tooLong.errorMessage?.contains("pattern") == true)
                // Fill the owner's rules up to one below the limit straight in the store, then one more through the API.
                for index in 0..<499 {
                    _ = try await env.stores.topics.createRule(
                        topicID: Int64(topicID), ownerID: user.id, kind: .keyword, pattern: "w\(index)", priority: 0, enabled: true)
                }
                let last = try await client.execute(
                    uri: "/api/v1/topics/\(topicID)/rules", method: .post, headers: .auth(key), body: jsonBody(["kind": "keyword", "pattern": "last"]))
                #expect(last.status == .created)
                let over = try await client.execute(
                    uri: "/api/v1/topics/\(topicID)/rules", method: .post, headers: .auth(key), body: jsonBody(["kind": "keyword", "pattern": "over"]))
                #expect(over.status == .conflict)
                #expect(over.errorCode == "limit_exceeded")
            }
        }
    }

    @Test func badPagingParametersNameTheParameter() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await env.application().test(.router) { client in
                let chat = try await client.execute(uri: "/api/v1/chats", method: .post, headers: .auth(key), body: jsonBody(["title": "t"]))
                let messages = "/api/v1/chats/\(try #require(chat.json["id"] as? Int))/messages"
                for (query, field) in [("limit=0", "limit"), ("limit=101", "limit"), ("limit=x", "limit"), ("cursor=-3", "cursor"),
                                       ("cursor=abc", "cursor"), ("after=0", "after"), ("cursor=5&after=2", "after")] {
                    let response = try await client.execute(uri: "\(messages)?\(query)", method: .get, headers: .auth(key))
                    #expect(response.status == .badRequest, "\(query)")
                    #expect(response.errorCode == "invalid_field", "\(query)")
                    #expect(response.errorMessage?.contains(field) == true, "\(query): \(response.errorMessage ?? "")")
                }
                #expect(try await client.execute(uri: "/api/v1/chats?limit=1000", method: .get, headers: .auth(key)).status == .badRequest)
                #expect(try await client.execute(uri: "\(messages)?limit=100", method: .get, headers: .auth(key)).status == .ok)
            }
        }
    }
}
