import Files
import Foundation
import Hummingbird
import HummingbirdTesting
import Storage
import SwitchboardCore
import TestSupport
import Testing

/// Uploads through the route, extraction and indexing on real workers, embeddings from the local
/// model server, vectors in MariaDB, search through the route.
@Suite(.enabled(if: ModelServer.available, "SB_TEST_AI_URL is not set: no embedding model (scripts/test sets it)"))
struct FilesAPITests {
    static let docxFact = "The secret codename of project Heliotrope is BLUEWATER SEVEN."
    static let pdfFact = "The warehouse in Tromso stores exactly 4312 crates of cloudberry jam."

    static let filler = [
        "Quarterly meetings are held in the large conference room on the third floor.",
        "Employees may work from home two days a week after their probation period.",
        "The cafeteria serves vegetarian lunch every Wednesday.",
    ]

    @Test func aDOCXAndAPDFAreIndexedFoundDeletedAndNeverSeenByAnotherUser() async throws {
        try await FilesEnvironment.with { env in
            let nodeA = try await env.node()
            let nodeB = try await env.node()
            let (owner, key) = try await env.makeUser()
            let (_, otherKey) = try await env.makeUser()
            try await env.withWorker(search: nodeA) {
                let docx = try Documents.docx(paragraphs: ["Company handbook", Self.filler[0], Self.docxFact, Self.filler[1]])
                let pdf = Documents.pdf(pages: [Self.filler[2], Self.pdfFact])
                let (docxID, pdfID) = try await env.application(search: nodeA).test(.router) { client in
                    let uploaded = try await client.upload("handbook.docx", docx, key: key)
                    #expect(uploaded.status == .created)
                    #expect(uploaded.json["status"] as? String == "queued")
                    #expect(uploaded.json["contentType"] as? String == ContentSniffer.docx)
                    #expect(uploaded.json["size"] as? Int == docx.count)
                    let docxID = try #require(uploaded.json["id"] as? Int)
                    // The client's claimed type is not trusted: a PDF named .txt is a PDF.
                    let pdfUpload = try await client.upload("inventory.txt", pdf, key: key)
                    #expect(pdfUpload.json["contentType"] as? String == ContentSniffer.pdf)
                    let pdfID = try #require(pdfUpload.json["id"] as? Int)

                    let docxState = try await client.settled(docxID, key: key)
                    #expect(docxState["status"] as? String == "indexed", "\(docxState)")
                    #expect((docxState["chunks"] as? Int ?? 0) > 0)
                    let pdfState = try await client.settled(pdfID, key: key)
                    #expect(pdfState["status"] as? String == "indexed", "\(pdfState)")

                    let listed = try await client.getJSON("/api/v1/files", key: key).json["data"] as? [[String: Any]] ?? []
                    #expect(Set(listed.compactMap { $0["id"] as? Int }) == [docxID, pdfID])

                    let codename = try await client.search("What is the codename of project Heliotrope?", key: key)
                    #expect(codename.first?["fileId"] as? Int == docxID)
                    #expect((codename.first?["text"] as? String)?.contains("BLUEWATER SEVEN") == true)
                    let jam = try await client.search("How many crates of cloudberry jam are in Tromso?", key: key)
                    #expect(jam.first?["fileId"] as? Int == pdfID)
                    #expect(jam.first?["position"] as? String == "page 2")
                    #expect((jam.first?["text"] as? String)?.contains("4312") == true)

                    // Another user sees none of it: not in search, not by id.
                    #expect(try await client.search("What is the codename of project Heliotrope?", key: otherKey).isEmpty)
                    #expect(try await client.getJSON("/api/v1/files/\(docxID)", key: otherKey).status == .notFound)
                    let foreignDelete = try await client.execute(
                        uri: "/api/v1/files/\(docxID)", method: .delete, headers: [.authorization: "Bearer \(otherKey)"])
                    #expect(foreignDelete.status == .notFound)
                    return (docxID, pdfID)
                }
                // The second node has loaded the owner's index; the delete goes through the first.
                try await env.application(search: nodeB).test(.router) { client in
                    let before = try await client.search("codename of project Heliotrope", key: key)
                    #expect(before.first?["fileId"] as? Int == docxID)
                }
                #expect(await nodeB.cache.isCached(ownerID: owner.id))
                try await env.application(search: nodeA).test(.router) { client in
                    let deleted = try await client.execute(uri: "/api/v1/files/\(docxID)", method: .delete, headers: [.authorization: "Bearer \(key)"])
                    #expect(deleted.status == .noContent)
                    #expect(try await client.getJSON("/api/v1/files/\(docxID)", key: key).status == .notFound)
                }
                // Redis tells the other node to drop its index.
                #expect(try await eventually { await !nodeB.cache.isCached(ownerID: owner.id) })
                try await env.application(search: nodeB).test(.router) { client in
                    let after = try await client.search("codename of project Heliotrope", key: key)
                    #expect(!after.contains { $0["fileId"] as? Int == docxID })
                    #expect(after.allSatisfy { $0["fileId"] as? Int == pdfID })
                }
                #expect(try await env.stores.documents.vectors(ownerID: owner.id, model: env.embedder.model, dimension: 384)
                    .allSatisfy { $0.fileID == Int64(pdfID) })
            }
        }
    }

    @Test func badUploadsGetAClearFailureAndNothingHalfStored() async throws {
        try await FilesEnvironment.with(maxUploadBytes: 256 << 10) { env in
            let node = try await env.node()
            let (_, key) = try await env.makeUser()
            try await env.withWorker(search: node) {
                try await env.application(search: node).test(.router) { client in
                    let empty = try await client.upload("empty.txt", Data(), key: key)
                    #expect(empty.status == .badRequest)
                    #expect(empty.errorCode == "empty_file")

                    let tooLarge = try await client.upload("big.txt", Data(repeating: 0x61, count: 257 << 10), key: key)
                    #expect(tooLarge.status == .contentTooLarge)
                    #expect(tooLarge.errorCode == "payload_too_large")

                    let png = try await client.upload("photo.png", Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13]), key: key)
                    #expect(png.status == .unprocessableContent)
                    #expect(png.errorCode == "unsupported_file")

                    let notMultipart = try await client.execute(
                        uri: "/api/v1/files", method: .post, headers: [.authorization: "Bearer \(key)", .contentType: "application/pdf"],
                        body: ByteBuffer(bytes: Documents.pdf(pages: ["x"])))
                    #expect(notMultipart.status == .unsupportedMediaType)

                    let (body, contentType) = Documents.multipart(name: "a.txt", data: Data("hello".utf8), field: "attachment")
                    let noFilePart = try await client.execute(
                        uri: "/api/v1/files", method: .post, headers: [.authorization: "Bearer \(key)", .contentType: contentType], body: body)
                    #expect(noFilePart.status == .badRequest)
                    #expect(noFilePart.errorCode == "invalid_field")

                    // Refused uploads store nothing: no rows, no bytes.
                    #expect((try await client.getJSON("/api/v1/files", key: key).json["data"] as? [Any])?.isEmpty == true)
                    let stored = (try? FileManager.default.subpathsOfDirectory(atPath: env.configuration.storageDirectory)) ?? []
                    #expect(stored.allSatisfy { !$0.contains("-") }, "left behind: \(stored)")

                    // Accepted, then failed with a readable error by the extract job; the others go on.
                    let corrupt = try await client.upload("report.pdf", Data("%PDF-1.7\n1 0 obj garbage that is no PDF".utf8), key: key)
                    // One claims 80 MB (past the 64 MB limit), one 30 MB packed 1000:1 (past the ratio limit).
                    let bomb = try await client.upload("letter.docx", try Documents.zipBomb(megabytes: 80), key: key)
                    let denseBomb = try await client.upload("memo.docx", try Documents.zipBomb(megabytes: 30), key: key)
                    let blank = try await client.upload("blank.txt", Data("   \n\n\t \n".utf8), key: key)
                    let good = try await client.upload("notes.md", Data("# Notes\n\nThe boiler is serviced every October.".utf8), key: key)
                    for response in [corrupt, bomb, denseBomb, blank, good] { #expect(response.status == .created, "\(response.json)") }
                    let corruptState = try await client.settled(try #require(corrupt.json["id"] as? Int), key: key)
                    #expect(corruptState["status"] as? String == "failed")
                    #expect((corruptState["error"] as? String)?.contains("corrupt_file") == true, "\(corruptState)")
                    let bombState = try await client.settled(try #require(bomb.json["id"] as? Int), key: key)
                    #expect(bombState["status"] as? String == "failed")
                    #expect((bombState["error"] as? String)?.contains("file_too_large") == true, "\(bombState)")
                    let denseState = try await client.settled(try #require(denseBomb.json["id"] as? Int), key: key)
                    #expect(denseState["status"] as? String == "failed")
                    #expect((denseState["error"] as? String)?.contains("ZIP bomb") == true, "\(denseState)")
                    let blankState = try await client.settled(try #require(blank.json["id"] as? Int), key: key)
                    #expect(blankState["status"] as? String == "failed")
                    #expect((blankState["error"] as? String)?.contains("no text") == true, "\(blankState)")
                    let goodState = try await client.settled(try #require(good.json["id"] as? Int), key: key)
                    #expect(goodState["status"] as? String == "indexed")
                    #expect(goodState["chunks"] as? Int == 1)
                }
            }
        }
    }

    @Test func searchValidatesItsQuery() async throws {
        try await FilesEnvironment.with { env in
            let (_, key) = try await env.makeUser()
            try await env.application(search: try await env.node()).test(.router) { client in
                #expect(try await client.getJSON("/api/v1/search", key: key).status == .badRequest)
                #expect(try await client.getJSON("/api/v1/search?q=hi&k=0", key: key).status == .badRequest)
                #expect(try await client.getJSON("/api/v1/search?q=hi&k=51", key: key).status == .badRequest)
                let none = try await client.getJSON("/api/v1/search?q=anything", key: key)
                #expect(none.status == .ok)
                #expect((none.json["data"] as? [Any])?.isEmpty == true)
                #expect(try await client.getJSON("/api/v1/files/abc", key: key).status == .notFound)
            }
            try await env.application(search: nil).test(.router) { client in
                let unavailable = try await client.getJSON("/api/v1/search?q=hi", key: key)
                #expect(unavailable.status == .serviceUnavailable)
            }
        }
    }
}
