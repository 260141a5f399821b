import APIServer
import Channels
import Files
import Foundation
import HTTPTypes
import HummingbirdTesting
import Mail
import Queue
import Storage
import SwitchboardCore
import TestSupport
import Testing
import TurnTestSupport

/// A mail's attachments go through the files module like uploads: stored as the message's files,
/// their text extracted by the `extract` job (and their indexing queued); a type Switchboard does
/// not read is kept and says so.
@Suite("Email attachments", .serialized)
struct EmailAttachmentTests {
    static func part(_ name: String, type: String, _ data: Data) -> String {
        "--mix\r\nContent-Type: \(type); name=\"\(name)\"\r\nContent-Disposition: attachment; filename=\"\(name)\"\r\n"
            + "Content-Transfer-Encoding: base64\r\n\r\n" + TransferEncoding.encodeBase64Lines(Array(data)) + "\r\n"
    }

    @Test func attachmentsAreExtractedAsTheMessagesFiles() async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            let directory = NSTemporaryDirectory() + "sb-email-files-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let textFact = "The boiler in flat 12B was serviced by Ottoline Brewster."
            let pdfFact = "Invoice 7731 is payable to Quillfeather Plumbing."
            let mail = "From: Ada <ada@example.com>\r\nTo: support@shop.example\r\nSubject: Papers\r\nMessage-ID: <papers-1@example.com>\r\n"
                + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n"
                + "--mix\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe papers you asked for.\r\n"
                + Self.part("service.txt", type: "text/plain", Data("Service record\n\n\(textFact)\n".utf8))
                + Self.part("invoice.pdf", type: "application/pdf", TestDocuments.pdf(pages: [pdfFact]))
                + Self.part("logo.png", type: "image/png", Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0]))
                + "--mix--\r\n"
            try await env.withWorker(queues: [.ai, .delivery, .extract]) {
                try await env.application(files: FilesConfiguration(storageDirectory: directory)).test(.router) { client in
                    let url = try #require(try await EmailWebhookTests.createChannel(client, key: key)["webhookUrl"] as? String)
                    let response = try await EmailWebhookTests.postRaw(client, url, mail)
                    #expect(response.status == .ok, "\(response.text)")
                    let messageID = try EmailConversationTests.messageID(response)

                    var files: [StoredFile] = []
                    var readable = false
                    for _ in 0..<400 where !readable {
                        files = try await env.stores.files.files(messageID: messageID)
                        readable = files.filter { $0.extractStatus == .done }.count == 2
                        if !readable { try await Task.sleep(for: .milliseconds(50)) }
                    }
                    #expect(readable, "the text and the PDF were extracted")
                    #expect(Set(files.map(\.name)) == ["service.txt", "invoice.pdf", "logo.png"])
                    let byName = Dictionary(uniqueKeysWithValues: files.map { ($0.name, $0) })
                    #expect(byName["service.txt"]?.extractedText?.contains(textFact) == true)
                    #expect(byName["invoice.pdf"]?.extractedText?.contains(pdfFact) == true)
                    #expect(files.allSatisfy { $0.storagePath.hasPrefix(directory) }, "under the files directory")
                    for name in ["service.txt", "invoice.pdf"] {
                        let file = try #require(byName[name])
                        // The extract job records the text, then moves the file on: poll past the first write.
                        var document = try #require(try await env.stores.documents.document(id: file.id, ownerID: user.id))
                        for _ in 0..<200 where ![.indexing, .indexed].contains(document.status) {
                            try await Task.sleep(for: .milliseconds(50))
                            document = try #require(try await env.stores.documents.document(id: file.id, ownerID: user.id))
                        }
                        #expect([.indexing, .indexed].contains(document.status), "\(name) went on to indexing")
                    }
                    let logoFile = try #require(byName["logo.png"])
                    let logo = try #require(try await env.stores.documents.document(id: logoFile.id, ownerID: user.id))
                    #expect(logo.status == .failed)
                    #expect(logo.error?.contains("kept, not read") == true)
                    #expect(logo.mimeType == "image/png")
                    // The files API lists them as the user's.
                    let listed = try await client.execute(uri: "/api/v1/files", method: .get, headers: .auth(key)) { $0.json["data"] as? [[String: Any]] }
                    #expect(Set((listed ?? []).compactMap { $0["id"] as? Int }) == Set(files.map { Int($0.id) }))
                }
            }
        }
    }
}
