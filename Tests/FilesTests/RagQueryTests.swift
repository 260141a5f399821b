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

/// `rag_query` on a real turn: a user with an indexed document asks about its fact; the node's
/// output holds the passage, the chat model gets it as context, and the `complete` event and the
/// stored reply name the file.
@Suite(.enabled(if: ModelServer.available, "SB_TEST_AI_URL is not set: no embedding model (scripts/test sets it)"))
struct RagQueryTests {
    /// What the chat model is asked.
    actor Prompts {
        var all: [String] = []
        func record(_ text: String) { all.append(text) }
    }

    @Test func aQuestionAboutAnIndexedDocumentIsAnsweredFromItWithSources() async throws {
        let prompts = Prompts()
        let chat = ScriptedProvider { request in
            switch request.slot {
            case .sort: return .init(text: #"{"topic":"general","language":"en","web_search":false,"multi":false}"#)
            default:
                await prompts.record(request.messages.map(\.content).joined(separator: "\n"))
                return .init(text: "It is BLUEWATER SEVEN.")
            }
        }
        try await FilesEnvironment.with(chat: chat) { env in
            let node = try await env.node()
            let (owner, key) = try await env.makeUser()
            let (_, otherKey) = try await env.makeUser()
            try await env.withWorker(search: node) {
                try await env.application(search: node).test(.router) { client in
                    let docx = try Documents.docx(paragraphs: [FilesAPITests.filler[0], FilesAPITests.docxFact, FilesAPITests.filler[1]])
                    let pdf = Documents.pdf(pages: [FilesAPITests.pdfFact])
                    let docxID = try #require(try await client.upload("handbook.docx", docx, key: key).json["id"] as? Int)
                    let pdfID = try #require(try await client.upload("inventory.pdf", pdf, key: key).json["id"] as? Int)
                    #expect(try await client.settled(docxID, key: key)["status"] as? String == "indexed")
                    #expect(try await client.settled(pdfID, key: key)["status"] as? String == "indexed")

                    for (question, fileID, fact) in [
                        ("What is the secret codename of project Heliotrope?", docxID, "BLUEWATER SEVEN"),
                        ("How many crates of cloudberry jam does the Tromso warehouse store?", pdfID, "4312"),
                    ] {
                        let posted = try await client.execute(
                            uri: "/api/v1/messages", method: .post,
                            headers: [.authorization: "Bearer \(key)", .contentType: "application/json"],
                            body: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: ["content": question])))
                        #expect(posted.status == .accepted)
                        let messageID = try #require(posted.json["messageId"] as? Int)
                        var detail: [String: Any] = [:]
                        #expect(try await eventually {
                            detail = try await client.getJSON("/api/v1/messages/\(messageID)", key: key).json
                            return (detail["message"] as? [String: Any])?["status"] as? String == "completed"
                        }, "\(detail)")
                        let tasks = detail["tasks"] as? [[String: Any]] ?? []
                        let documents = tasks.first { $0["nodeId"] as? String == "documents" }
                        #expect(documents?["state"] as? String == "done", "\(tasks)")
                        #expect((documents?["output"] as? String)?.contains(fact) == true, "\(tasks)")
                        // The stored reply names the right file first.
                        let sources = detail["sources"] as? [[String: Any]] ?? []
                        #expect(sources.first?["fileId"] as? Int == fileID, "\(sources)")
                        // So does the `complete` event (the stream may get it just after the row).
                        var lastEntry: TurnStreamEntry?
                        #expect(try await eventually {
                            lastEntry = try await TurnStreamReader(redis: env.redis).last(messageID: Int64(messageID))
                            return lastEntry?.type == "complete"
                        }, "\(String(describing: lastEntry?.type))")
                        let last = try #require(lastEntry)
                        let completion = try JSONDecoder().decode(TurnCompletion.self, from: Data(last.data))
                        #expect(completion.sources?.first?.fileId == Int64(fileID))
                        #expect(completion.sources?.first?.name == (fileID == docxID ? "handbook.docx" : "inventory.pdf"))
                    }
                    // The chat model was handed the passages.
                    let asked = await prompts.all
                    #expect(asked.contains { $0.contains("BLUEWATER SEVEN") })
                    #expect(asked.contains { $0.contains("4312") })
                }
                // A user without documents gets a plain chat turn: no rag node, no sources.
                try await env.application(search: node).test(.router) { client in
                    let posted = try await client.execute(
                        uri: "/api/v1/messages", method: .post,
                        headers: [.authorization: "Bearer \(otherKey)", .contentType: "application/json"],
                        body: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: ["content": "What is the secret codename of project Heliotrope?"])))
                    let messageID = try #require(posted.json["messageId"] as? Int)
                    var detail: [String: Any] = [:]
                    #expect(try await eventually {
                        detail = try await client.getJSON("/api/v1/messages/\(messageID)", key: otherKey).json
                        return (detail["message"] as? [String: Any])?["status"] as? String == "completed"
                    })
                    let tasks = detail["tasks"] as? [[String: Any]] ?? []
                    #expect(!tasks.contains { $0["nodeId"] as? String == "documents" })
                    #expect((detail["sources"] as? [Any])?.isEmpty == true)
                }
                _ = owner
            }
        }
    }

    /// Both ways of posting a message take `fileIds`: `POST /messages` answers 202,
    /// `POST /messages/stream` streams the turn.
    @Test(arguments: ["/api/v1/messages", "/api/v1/messages/stream"])
    func aMessageCarriesItsOwnersFilesOnly(path: String) async throws {
        let prompts = Prompts()
        let chat = ScriptedProvider { request in
            if request.slot == .sort { return .init(text: #"{"topic":"general","language":"en","web_search":false,"multi":false}"#) }
            await prompts.record(request.messages.map(\.content).joined(separator: "\n"))
            return .init(text: "noted")
        }
        try await FilesEnvironment.with(chat: chat) { env in
            let node = try await env.node()
            let (_, key) = try await env.makeUser()
            let (_, otherKey) = try await env.makeUser()
            try await env.withWorker(search: node) {
                try await env.application(search: node).test(.router) { client in
                    let note = Data("Meeting notes: the budget for the Oslo office is 90000 euros.".utf8)
                    let fileID = try #require(try await client.upload("notes.txt", note, key: key).json["id"] as? Int)
                    #expect(try await client.settled(fileID, key: key)["status"] as? String == "indexed")
                    func post(_ key: String, _ body: [String: Any]) async throws -> TestResponse {
                        try await client.execute(
                            uri: path, method: .post, headers: [.authorization: "Bearer \(key)", .contentType: "application/json"],
                            body: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
                    }
                    // Another user cannot attach it (nor learn whether it exists).
                    let foreign = try await post(otherKey, ["content": "Summarize the attached file", "fileIds": [fileID]])
                    #expect(foreign.status == .notFound)
                    #expect(foreign.errorCode == "not_found")
                    let unknown = try await post(key, ["content": "Summarize the attached file", "fileIds": [fileID + 1000]])
                    #expect(unknown.status == .notFound)
                    let tooMany = try await post(key, ["content": "Summarize these", "fileIds": Array(fileID..<(fileID + 21))])
                    #expect(tooMany.status == .badRequest)
                    #expect(tooMany.errorCode == "invalid_field")

                    let posted = try await post(key, ["content": "What does the attached file say?", "fileIds": [fileID]])
                    let messageID: Int
                    if path.hasSuffix("/stream") {
                        #expect(posted.status == .ok)
                        messageID = try #require(posted.headers.first { $0.name.canonicalName == "x-message-id" }.flatMap { Int($0.value) })
                    } else {
                        #expect(posted.status == .accepted)
                        messageID = try #require(posted.json["messageId"] as? Int)
                    }
                    #expect(try await eventually {
                        let detail = try await client.getJSON("/api/v1/messages/\(messageID)", key: key).json
                        return (detail["message"] as? [String: Any])?["status"] as? String == "completed"
                    })
                    // The file's text reached the chat as an attachment.
                    #expect(await prompts.all.contains { $0.contains("File notes.txt:") && $0.contains("90000 euros") })
                    let attached = try await env.stores.files.files(messageID: Int64(messageID))
                    #expect(attached.map(\.id) == [Int64(fileID)])
                }
            }
        }
    }
}
