import AIProviders
import Files
import Foundation
import Hummingbird
import HummingbirdTesting
import Pipeline
import Storage
import SwitchboardCore
import TestSupport
import Testing
import Turns

/// Documents scoped by topic, against real MariaDB, Redis, workers and the local embedding
/// model: a file put in a topic (on upload or with PATCH) is what a turn of that topic searches;
/// a turn of another topic with documents of its own does not get it; a topic without documents
/// searches all of the user's; another user never. The classifier's `documents` field lets a
/// message skip the user's documents.
@Suite(.enabled(if: ModelServer.available, "SB_TEST_AI_URL is not set: no embedding model (scripts/test sets it)"))
struct TopicScopeTests {
    static let falconFact = "The launch code of project Falcon is MAGENTA-44, kept by the night shift."
    static let soupFact = "The cafeteria on floor three serves lentil soup with rye bread every Friday."
    static let falconQuestion = "What is the launch code of project Falcon?"

    /// What the sorter was asked (its system prompts).
    actor Prompts {
        var sorter: [String] = []
        func record(_ text: String) { sorter.append(text) }
    }

    /// The sorter names the topic written in brackets at the start of the message ("[beta] …").
    static func sorter(_ prompts: Prompts? = nil, documents: Bool? = nil) -> ScriptedProvider {
        ScriptedProvider { request in
            guard request.slot == .sort else { return .init(text: "the answer") }
            await prompts?.record(request.messages.first?.content ?? "")
            let message = request.messages.last?.content ?? ""
            var topic = "general"
            if message.hasPrefix("["), let end = message.firstIndex(of: "]") { topic = String(message[message.index(after: message.startIndex)..<end]) }
            var answer: [String: Any] = ["topic": topic, "language": "en", "web_search": false, "multi": false]
            if let documents { answer["documents"] = documents }
            return .init(text: String(decoding: try JSONSerialization.data(withJSONObject: answer), as: UTF8.self))
        }
    }

    /// Posts `text` and waits for its turn; answers the message's detail.
    static func ask(_ client: some TestClientProtocol, _ text: String, key: String) async throws -> [String: Any] {
        let posted = try await client.execute(
            uri: "/api/v1/messages", method: .post, headers: [.authorization: "Bearer \(key)", .contentType: "application/json"],
            body: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: ["content": text])))
        #expect(posted.status == .accepted, "\(String(buffer: posted.body))")
        let messageID = try #require(posted.json["messageId"] as? Int)
        var detail: [String: Any] = [:]
        #expect(try await eventually {
            detail = try await client.getJSON("/api/v1/messages/\(messageID)", key: key).json
            let status = (detail["message"] as? [String: Any])?["status"] as? String
            return status == "completed" || status == "failed"
        }, "\(detail)")
        return detail
    }

    static func documentsOutput(_ detail: [String: Any]) -> String? {
        let tasks = detail["tasks"] as? [[String: Any]] ?? []
        return tasks.first { $0["nodeId"] as? String == "documents" }?["output"] as? String
    }

    static func sourceNames(_ detail: [String: Any]) -> [String] {
        (detail["sources"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
    }

    @Test func aTurnSearchesItsTopicsDocumentsAndFallsBackToAllWhenTheTopicHasNone() async throws {
        try await FilesEnvironment.with(chat: Self.sorter()) { env in
            // One node answers the API, another runs the turns: a topic change reaches the
            // worker's index over Redis.
            let apiNode = try await env.node()
            let workerNode = try await env.node()
            let (owner, key) = try await env.makeUser()
            let (other, otherKey) = try await env.makeUser()
            let alpha = try await env.stores.topics.createTopic(ownerID: owner.id, name: "alpha", description: "project work", examples: [])
            _ = try await env.stores.topics.createTopic(ownerID: owner.id, name: "beta", description: "the office", examples: [])
            _ = try await env.stores.topics.createTopic(ownerID: owner.id, name: "gamma", description: "anything else", examples: [])
            let othersAlpha = try await env.stores.topics.createTopic(ownerID: other.id, name: "alpha", description: "theirs", examples: [])

            try await env.withWorker(search: workerNode) {
                try await env.application(search: apiNode).test(.router) { client in
                    // A topic by id before the file part, another by name after it.
                    let falcon = try await client.upload("falcon.txt", Data(Self.falconFact.utf8), key: key, fields: [("topicId", "\(alpha.id)")])
                    #expect(falcon.status == .created, "\(String(buffer: falcon.body))")
                    #expect(falcon.json["topicId"] as? Int == Int(alpha.id))
                    let soup = try await client.upload("soup.txt", Data(Self.soupFact.utf8), key: key, fields: [("topic", "beta")], after: true)
                    #expect(soup.status == .created, "\(String(buffer: soup.body))")
                    let falconID = try #require(falcon.json["id"] as? Int)
                    let soupID = try #require(soup.json["id"] as? Int)
                    #expect(try await client.settled(falconID, key: key)["status"] as? String == "indexed")
                    let soupFile = try await client.settled(soupID, key: key)
                    #expect(soupFile["status"] as? String == "indexed")
                    #expect(soupFile["topicId"] as? Int != nil && soupFile["topicId"] as? Int != Int(alpha.id))

                    // Refused: another user's topic, an unknown one, a malformed id; nothing stored.
                    let foreign = try await client.upload("x.txt", Data("x".utf8), key: key, fields: [("topicId", "\(othersAlpha.id)")])
                    #expect(foreign.status == .notFound)
                    let unknown = try await client.upload("x.txt", Data("x".utf8), key: key, fields: [("topic", "no such topic")])
                    #expect(unknown.status == .notFound)
                    let malformed = try await client.upload("x.txt", Data("x".utf8), key: key, fields: [("topicId", "abc")])
                    #expect(malformed.status == .badRequest)
                    #expect(malformed.errorCode == "invalid_field")
                    #expect((try await client.getJSON("/api/v1/files", key: key).json["data"] as? [Any])?.count == 2)

                    // The search route: one topic's documents only.
                    #expect(try await client.search(Self.falconQuestion, key: key).first?["fileId"] as? Int == falconID)
                    #expect(try await client.search(Self.falconQuestion, key: key, extra: "&topicId=\(alpha.id)").map { $0["fileId"] as? Int } == [falconID])
                    #expect(try await client.search(Self.falconQuestion, key: key, extra: "&topic=beta").map { $0["fileId"] as? Int } == [soupID])
                    #expect(try await client.search(Self.falconQuestion, key: key, extra: "&topic=gamma").isEmpty)
                    #expect(try await client.getJSON("/api/v1/search?q=falcon&topicId=\(othersAlpha.id)", key: key).status == .notFound)

                    // A turn of topic alpha finds the fact in alpha's document.
                    let inAlpha = try await Self.ask(client, "[alpha] \(Self.falconQuestion)", key: key)
                    #expect((inAlpha["message"] as? [String: Any])?["topic"] as? String == "alpha")
                    #expect(Self.documentsOutput(inAlpha)?.contains("MAGENTA-44") == true, "\(inAlpha)")
                    #expect(Self.sourceNames(inAlpha) == ["falcon.txt"])
                    // Topic beta has documents of its own: the turn searches those only.
                    let inBeta = try await Self.ask(client, "[beta] \(Self.falconQuestion)", key: key)
                    #expect(Self.documentsOutput(inBeta)?.contains("MAGENTA-44") == false, "\(inBeta)")
                    #expect(!Self.sourceNames(inBeta).contains("falcon.txt"))
                    // Topic gamma has none: every document of the user is searched.
                    let inGamma = try await Self.ask(client, "[gamma] \(Self.falconQuestion)", key: key)
                    #expect(Self.documentsOutput(inGamma)?.contains("MAGENTA-44") == true, "\(inGamma)")
                    #expect(Self.sourceNames(inGamma).first == "falcon.txt")
                    #expect(await workerNode.cache.isCached(ownerID: owner.id))

                    // Moving the file to beta (on the api node) reaches the worker's index.
                    let moved = try await client.execute(
                        uri: "/api/v1/files/\(falconID)", method: .patch,
                        headers: [.authorization: "Bearer \(key)", .contentType: "application/json"],
                        body: ByteBuffer(string: #"{"topic": "beta"}"#))
                    #expect(moved.status == .ok, "\(String(buffer: moved.body))")
                    #expect(moved.json["topicId"] as? Int == soupFile["topicId"] as? Int)
                    #expect(try await eventually { await !workerNode.cache.isCached(ownerID: owner.id) })
                    let movedToBeta = try await Self.ask(client, "[beta] \(Self.falconQuestion)", key: key)
                    #expect(Self.documentsOutput(movedToBeta)?.contains("MAGENTA-44") == true, "\(movedToBeta)")
                    // Alpha has no documents now: it falls back to all of them, and still finds it.
                    #expect(Self.sourceNames(try await Self.ask(client, "[alpha] \(Self.falconQuestion)", key: key)).first == "falcon.txt")
                    #expect(try await client.search(Self.falconQuestion, key: key, extra: "&topicId=\(alpha.id)").isEmpty)

                    // No topic again; bad bodies are refused.
                    func patch(_ body: String, as caller: String = key, file: Int = falconID) async throws -> TestResponse {
                        try await client.execute(
                            uri: "/api/v1/files/\(file)", method: .patch,
                            headers: [.authorization: "Bearer \(caller)", .contentType: "application/json"], body: ByteBuffer(string: body))
                    }
                    let cleared = try await patch(#"{"topicId": null}"#)
                    #expect(cleared.status == .ok)
                    #expect(cleared.json["topicId"] is NSNull)
                    #expect(try await patch("{}").status == .badRequest)
                    #expect(try await patch(#"{"topicId": \#(alpha.id), "topic": "beta"}"#).status == .badRequest)
                    #expect(try await patch(#"{"topicId": "alpha"}"#).status == .badRequest)
                    #expect(try await patch(#"{"topicId": \#(othersAlpha.id)}"#).status == .notFound)
                    // Another user can neither move the file nor see it.
                    #expect(try await patch(#"{"topicId": \#(othersAlpha.id)}"#, as: otherKey).status == .notFound)

                    // Another user's turn of their own "alpha" never gets the owner's document.
                    let stranger = try await Self.ask(client, "[alpha] \(Self.falconQuestion)", key: otherKey)
                    #expect(Self.documentsOutput(stranger) == nil)
                    #expect(Self.sourceNames(stranger).isEmpty)
                    #expect(try await client.search(Self.falconQuestion, key: otherKey).isEmpty)
                }
            }
            await apiNode.cache.stop()
            await workerNode.cache.stop()
        }
    }

    @Test func theSorterCanSayAMessageNeedsNoDocuments() async throws {
        let prompts = Prompts()
        try await FilesEnvironment.with(chat: Self.sorter(prompts, documents: false)) { env in
            let node = try await env.node()
            let (_, key) = try await env.makeUser()
            let (_, emptyKey) = try await env.makeUser()
            try await env.withWorker(search: node) {
                try await env.application(search: node).test(.router) { client in
                    let file = try await client.upload("falcon.txt", Data(Self.falconFact.utf8), key: key)
                    let fileID = try #require(file.json["id"] as? Int)
                    #expect(try await client.settled(fileID, key: key)["status"] as? String == "indexed")

                    // The sorter, offered the choice, says no documents: a plain chat turn.
                    let answered = try await Self.ask(client, "Tell me a short joke about penguins, please?", key: key)
                    #expect((answered["message"] as? [String: Any])?["status"] as? String == "completed")
                    #expect(Self.documentsOutput(answered) == nil, "\(answered)")
                    let nodes = (answered["tasks"] as? [[String: Any]] ?? []).compactMap { $0["nodeId"] as? String }
                    #expect(!nodes.contains("documents"), "\(nodes)")
                    // A user without documents is not offered the choice.
                    _ = try await Self.ask(client, "Tell me a short joke about owls, please?", key: emptyKey)
                    let asked = await prompts.sorter
                    #expect(asked.count == 2)
                    #expect(asked.first?.contains(#""documents""#) == true)
                    #expect(asked.last?.contains(#""documents""#) == false)
                }
            }
            await node.cache.stop()
        }
    }

    @Test func smallTalkSkipsTheDocumentsWhileAQuestionUsesThem() async throws {
        try await FilesEnvironment.with(chat: Self.sorter(documents: true)) { env in
            let node = try await env.node()
            let (_, key) = try await env.makeUser()
            try await env.withWorker(search: node) {
                try await env.application(search: node).test(.router) { client in
                    let file = try await client.upload("falcon.txt", Data(Self.falconFact.utf8), key: key)
                    let fileID = try #require(file.json["id"] as? Int)
                    #expect(try await client.settled(fileID, key: key)["status"] as? String == "indexed")
                    // The fast path (small talk) says no documents: no rag_query node, no embedding.
                    let thanks = try await Self.ask(client, "thanks a lot", key: key)
                    #expect(Self.documentsOutput(thanks) == nil, "\(thanks)")
                    // The sorter says yes: the documents are searched.
                    let question = try await Self.ask(client, Self.falconQuestion, key: key)
                    #expect(Self.documentsOutput(question)?.contains("MAGENTA-44") == true, "\(question)")
                    #expect(Self.sourceNames(question) == ["falcon.txt"])
                }
            }
            await node.cache.stop()
        }
    }
}
