import APIServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Pipeline
import Storage
import SwitchboardCore
import Testing

/// Topics, example phrases and routing rules through the API: who may edit what, what is refused,
/// and that a worker's rule cache picks an edit up without a restart.
@Suite("Topics and routing rules")
struct TopicsTests {
    func makeAdmin(_ env: TestEnvironment) async throws -> String {
        let email = "admin\(UInt32.random(in: 0...UInt32.max))@example.com"
        _ = try await Accounts(stores: env.stores).createUser(email: email, role: .admin)
        return try await Accounts(stores: env.stores).createAPIKey(userEmail: email).secret
    }

    @Test func usersEditTheirOwnTopicsAndOnlyAdminsEditGlobalOnes() async throws {
        try await TestEnvironment.with { env in
            let (_, alice) = try await env.makeUser()
            let (_, bob) = try await env.makeUser()
            let admin = try await makeAdmin(env)
            try await env.application().test(.router) { client in
                let own = try await client.execute(
                    uri: "/api/v1/topics", method: .post, headers: .auth(alice),
                    body: jsonBody(["name": " billing ", "description": "invoices", "examples": ["where is my invoice", "refund please"]]))
                #expect(own.status == .created)
                #expect(own.json["name"] as? String == "billing")
                #expect(own.json["scope"] as? String == "user")
                #expect(own.json["examples"] as? [String] == ["where is my invoice", "refund please"])
                let ownID = try #require(own.json["id"] as? Int)

                // A global topic needs an admin.
                let refused = try await client.execute(
                    uri: "/api/v1/topics", method: .post, headers: .auth(alice), body: jsonBody(["name": "weather", "global": true]))
                #expect(refused.status == .forbidden)
                #expect(refused.errorCode == "forbidden")
                let global = try await client.execute(
                    uri: "/api/v1/topics", method: .post, headers: .auth(admin), body: jsonBody(["name": "weather", "global": true]))
                #expect(global.status == .created)
                #expect(global.json["scope"] as? String == "global")
                let globalID = try #require(global.json["id"] as? Int)
                let again = try await client.execute(
                    uri: "/api/v1/topics", method: .post, headers: .auth(admin), body: jsonBody(["name": "Weather", "global": true]))
                #expect(again.status == .conflict)

                // Alice sees the global topic and her own; Bob only the global one.
                let aliceList = try await client.execute(uri: "/api/v1/topics", method: .get, headers: .auth(alice))
                let aliceNames = Set(((aliceList.json["data"] as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String })
                #expect(aliceNames == ["billing", "weather"])
                let bobList = try await client.execute(uri: "/api/v1/topics", method: .get, headers: .auth(bob))
                let bobNames = ((bobList.json["data"] as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String }
                #expect(bobNames == ["weather"])

                // Bob cannot see, edit or delete Alice's topic: 404, as if it did not exist.
                for (method, body) in [(HTTPRequest.Method.get, nil), (.patch, jsonBody(["name": "x"])), (.delete, nil)] as [(HTTPRequest.Method, ByteBuffer?)] {
                    let response = try await client.execute(uri: "/api/v1/topics/\(ownID)", method: method, headers: .auth(bob), body: body)
                    #expect(response.status == .notFound, "\(method)")
                }
                let foreignRule = try await client.execute(
                    uri: "/api/v1/topics/\(ownID)/rules", method: .post, headers: .auth(bob),
                    body: jsonBody(["kind": "keyword", "pattern": "invoice"]))
                #expect(foreignRule.status == .notFound)
                // Alice can read the global topic but not change it.
                #expect(try await client.execute(uri: "/api/v1/topics/\(globalID)", method: .get, headers: .auth(alice)).status == .ok)
                let patchGlobal = try await client.execute(
                    uri: "/api/v1/topics/\(globalID)", method: .patch, headers: .auth(alice), body: jsonBody(["description": "x"]))
                #expect(patchGlobal.status == .forbidden)

                let renamed = try await client.execute(
                    uri: "/api/v1/topics/\(ownID)", method: .patch, headers: .auth(alice),
                    body: jsonBody(["name": "invoices", "examples": ["send me the invoice"]]))
                #expect(renamed.status == .ok)
                #expect(renamed.json["name"] as? String == "invoices")
                #expect(renamed.json["description"] as? String == "invoices")
                #expect(renamed.json["examples"] as? [String] == ["send me the invoice"])

                #expect(try await client.execute(uri: "/api/v1/topics/\(ownID)", method: .delete, headers: .auth(alice)).status == .noContent)
                #expect(try await client.execute(uri: "/api/v1/topics/\(ownID)", method: .get, headers: .auth(alice)).status == .notFound)
            }
        }
    }

    @Test func invalidTopicsAndRulesAreRefusedNamingTheField() async throws {
        try await TestEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await env.application().test(.router) { client in
                let cases: [([String: Any], String)] = [
                    (["description": "no name"], "name"),
                    (["name": "   "], "name"),
                    (["name": String(repeating: "n", count: 101)], "name"),
                    (["name": "t", "examples": ["ok", ""]], "examples[1]"),
                    (["name": "t", "examples": "not a list"], "examples"),
                ]
                for (body, field) in cases {
                    let response = try await client.execute(uri: "/api/v1/topics", method: .post, headers: .auth(key), body: jsonBody(body))
                    #expect(response.status == .badRequest, "\(body)")
                    #expect(response.errorMessage?.hasPrefix(field) == true, "\(body): \(response.errorMessage ?? "")")
                }
                let topic = try await client.execute(uri: "/api/v1/topics", method: .post, headers: .auth(key), body: jsonBody(["name": "t"]))
                let id = try #require(topic.json["id"] as? Int)
                let ruleCases: [([String: Any], String)] = [
                    (["kind": "glob", "pattern": "x"], "kind"),
                    (["kind": "regex", "pattern": "(unclosed"], "pattern"),
                    (["kind": "keyword", "pattern": ""], "pattern"),
                    (["kind": "keyword", "pattern": "   "], "pattern"),
                    (["kind": "keyword", "pattern": "x", "priority": 5000], "priority"),
                ]
                for (body, field) in ruleCases {
                    let response = try await client.execute(
                        uri: "/api/v1/topics/\(id)/rules", method: .post, headers: .auth(key), body: jsonBody(body))
                    #expect(response.status == .badRequest, "\(body)")
                    #expect(response.errorMessage?.hasPrefix(field) == true, "\(body): \(response.errorMessage ?? "")")
                }
                #expect(try await client.execute(uri: "/api/v1/topics/abc", method: .get, headers: .auth(key)).status == .notFound)
                #expect(try await client.execute(uri: "/api/v1/topics/\(id)/rules/999999", method: .delete, headers: .auth(key)).status == .notFound)
            }
        }
    }

    @Test func aRuleEditReachesAWorkersCacheWithoutARestart() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            // What a worker holds: rules cached per user until an edit is announced on Redis.
            let cache = RoutingRulesCache(topics: env.stores.topics, ttl: .seconds(3600))
            try await cache.start(redis: env.redis)
            try await env.application().test(.router) { client in
                let before = try await cache.topics(ownerID: user.id).map(\.name)
                let topic = try await client.execute(uri: "/api/v1/topics", method: .post, headers: .auth(key), body: jsonBody(["name": "billing"]))
                let topicID = try #require(topic.json["id"] as? Int)
                #expect(try await cache.match("Where is my invoice?", ownerID: user.id) == nil)
                // The topic list the sorter and the embedding router read is cached the same way.
                #expect(!before.contains("billing"))
                try await Self.eventually { try await cache.topics(ownerID: user.id).map(\.name).contains("billing") }

                let created = try await client.execute(
                    uri: "/api/v1/topics/\(topicID)/rules", method: .post, headers: .auth(key),
                    body: jsonBody(["kind": "keyword", "pattern": "invoice", "priority": 10]))
                #expect(created.status == .created)
                let ruleID = try #require(created.json["id"] as? Int)
                try await Self.eventually { try await cache.match("Where is my invoice?", ownerID: user.id)?.topic == "billing" }

                let disabled = try await client.execute(
                    uri: "/api/v1/topics/\(topicID)/rules/\(ruleID)", method: .patch, headers: .auth(key), body: jsonBody(["enabled": false]))
                #expect(disabled.status == .ok)
                #expect(disabled.json["enabled"] as? Bool == false)
                try await Self.eventually { try await cache.match("Where is my invoice?", ownerID: user.id) == nil }

                let renamed = try await client.execute(
                    uri: "/api/v1/topics/\(topicID)", method: .patch, headers: .auth(key), body: jsonBody(["name": "invoices"]))
                #expect(renamed.status == .ok)
                try await Self.eventually { try await cache.topics(ownerID: user.id).map(\.name).contains("invoices") }

                let detail = try await client.execute(uri: "/api/v1/topics/\(topicID)", method: .get, headers: .auth(key))
                let rules = try #require(detail.json["rules"] as? [[String: Any]])
                #expect(rules.count == 1 && rules[0]["pattern"] as? String == "invoice" && rules[0]["priority"] as? Int == 10)
            }
            await cache.stop()
        }
    }

    /// Polls until `condition` holds (pub/sub delivery is asynchronous); fails after 5 s.
    static func eventually(_ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("condition still false after 5 s")
    }
}
