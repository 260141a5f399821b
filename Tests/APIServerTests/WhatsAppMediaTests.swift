import APIServer
import Channels
import Files
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Queue
import Storage
import SwitchboardCore
import Synchronization
import Testing
import Turns
import TurnTestSupport

/// WhatsApp messages that are not text, end to end against real Redis and MariaDB, a worker and
/// the fake Graph API: media fetched by its id into the message's files (a document extracted),
/// a failed download kept as a failed file, other types answered politely once, without a turn.
@Suite("WhatsApp media and other types", .serialized)
struct WhatsAppMediaTests {
    static func payload(_ messages: [String], waID: String = "15557654") -> String {
        #"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","contacts":[{"profile":{"name":"Grace"},"wa_id":"\#(waID)"}],"messages":[\#(messages.joined(separator: ","))]}}]}]}"#
    }

    static func media(_ wamid: String, type: String, mediaID: String, mimeType: String, filename: String? = nil, caption: String? = nil,
                      from waID: String = "15557654") -> String {
        var fields = [#""id":"\#(mediaID)""#, #""mime_type":"\#(mimeType)""#]
        if let filename { fields.append(#""filename":"\#(filename)""#) }
        if let caption { fields.append(#""caption":"\#(caption)""#) }
        return #"{"from":"\#(waID)","id":"\#(wamid)","timestamp":"1700000000","type":"\#(type)","\#(type)":{\#(fields.joined(separator: ","))}}"#
    }

    /// A running fake Graph API and a worker that serves turns, deliveries, extraction and media.
    static func withChannel(
        _ body: @Sendable (TestEnvironment, FakeGraphAPI, any TestClientProtocol, String, Int64) async throws -> Void
    ) async throws {
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            try await FakeGraphAPI.running { graph, graphURL in
                let directory = NSTemporaryDirectory() + "sb-wa-media-\(UUID().uuidString)"
                defer { try? FileManager.default.removeItem(atPath: directory) }
                let configuration = FilesConfiguration(storageDirectory: directory, maxUploadBytes: 1 << 20)
                let deliveries = ChannelRegistry.configured(stores: env.stores, secrets: .development(), whatsAppGraphURL: graphURL).deliveries
                let fetcher = WhatsAppMediaFetcher(
                    stores: env.stores, secrets: .development(), graphURL: graphURL,
                    files: FileIntake(stores: env.stores, jobs: env.jobs, configuration: configuration),
                    intake: ChannelIntake(stores: env.stores, jobs: env.jobs, redis: env.redis))
                try await env.withWorker(
                    deliveries: deliveries, queues: [.ai, .delivery, .extract], register: { WhatsAppMediaJob.register(in: &$0, fetcher: fetcher) }
                ) {
                    try await env.application(files: configuration).test(.router) { client in
                        let url = try #require(try await WhatsAppWebhookTests.createChannel(client, key: key)["webhookUrl"] as? String)
                        try await body(env, graph, client, url, user.id)
                    }
                }
            }
        }
    }

    /// The user message stored for `wamid`.
    static func message(_ env: TestEnvironment, _ ownerID: Int64, _ wamid: String) async throws -> Message? {
        try await env.stores.messages.message(ownerID: ownerID, channel: .whatsapp, externalID: wamid)
    }

    /// Waits (bounded by attempts, not asserted on time) until `condition` holds.
    static func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
        for _ in 0..<400 {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    @Test func anImageAndADocumentBecomeTheMessagesFilesAndTheDocumentIsRead() async throws {
        try await Self.withChannel { env, graph, client, url, ownerID in
            let fact = "The spare key of the Lisbon office is in locker 4417-ZEBRA."
            graph.media.withLock {
                $0["9001"] = .init(bytes: Array("Office notes\n\n\(fact)\n".utf8), mimeType: "text/plain")
                $0["9002"] = .init(bytes: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52], mimeType: "image/png")
            }
            let body = Self.payload([
                Self.media("wamid.DOC", type: "document", mediaID: "9001", mimeType: "text/plain", filename: "notes.txt", caption: "where is the key?"),
                Self.media("wamid.IMG", type: "image", mediaID: "9002", mimeType: "image/png"),
            ])
            let first = try await WhatsAppWebhookTests.post(client, url, body)
            #expect(first.status == .ok)
            #expect(first.json["accepted"] as? Int == 2)

            let document = try #require(try await Self.message(env, ownerID, "wamid.DOC"))
            #expect(document.content == "where is the key?\n[document: notes.txt]")
            var files: [StoredFile] = []
            #expect(try await Self.eventually {
                files = try await env.stores.files.files(messageID: document.id)
                return files.first?.extractedText != nil
            }, "the document was downloaded and its text extracted")
            let file = try #require(files.first)
            #expect(files.count == 1)
            #expect(file.name == "notes.txt")
            #expect(file.chatID == document.chatID)
            #expect(file.extractedText?.contains(fact) == true)
            #expect(try await env.stores.documents.document(id: file.id, ownerID: ownerID)?.status != .failed)

            // The document's turn ran and its reply went back; the image got the polite answer.
            #expect(try await Self.eventually { graph.recorded.filter { $0.text != nil }.count >= 2 })
            let texts = graph.recorded.compactMap(\.text)
            #expect(texts.contains(EchoResponder.reply(to: document.content)))
            #expect(texts.contains(WhatsAppReceived.unsupportedReply(type: "image")))

            let image = try #require(try await Self.message(env, ownerID, "wamid.IMG"))
            let imageFiles = try await env.stores.files.files(messageID: image.id)
            #expect(imageFiles.count == 1)
            #expect(imageFiles.first?.mimeType == "image/png")
            #expect(imageFiles.first?.size == 16, "the image's bytes are kept")
            let imageFile = try #require(imageFiles.first)
            let imageDocument = try #require(try await env.stores.documents.document(id: imageFile.id, ownerID: ownerID))
            #expect(imageDocument.status == .failed)
            #expect(imageDocument.error?.contains("kept, not read") == true)

            // Meta retries the delivery: nothing is fetched, stored or sent again.
            let again = try await WhatsAppWebhookTests.post(client, url, body)
            #expect(again.json["duplicates"] as? Int == 2)
            #expect(try await Self.eventually {
                let replies = try await env.stores.messages.messages(chatID: document.chatID, ownerID: ownerID, limit: 20, beforeID: nil, afterID: nil)
                    .filter { $0.role == .assistant }
                return replies.count == 2 && replies.allSatisfy { $0.deliveredAt != nil }
            })
            #expect(try await env.stores.files.files(messageID: document.id).count == 1)
            #expect(graph.mediaRequests.withLock { $0 }.filter { $0.hasSuffix("9001") }.count == 2, "one lookup and one download")
            #expect(graph.recorded.filter { $0.text != nil }.count == 2)
            // Both hand-offs are done: neither message is held from the recovery sweep any more.
            #expect(try await Self.eventually { try await TurnHold(redis: env.redis).held(among: [document.id, image.id]).isEmpty })
        }
    }

    @Test func aFailedDownloadKeepsTheMessageAndMarksItsFileFailed() async throws {
        try await Self.withChannel { env, graph, client, url, ownerID in
            _ = graph.failingMedia.withLock { $0.insert("9404") }
            let response = try await WhatsAppWebhookTests.post(
                client, url, Self.payload([Self.media("wamid.GONE", type: "document", mediaID: "9404", mimeType: "application/pdf", filename: "q3.pdf")]))
            #expect(response.status == .ok, "the webhook answers before anything is downloaded")
            let message = try #require(try await Self.message(env, ownerID, "wamid.GONE"), "the message is stored")
            var files: [StoredFile] = []
            // The row is written, then marked failed: wait for the second step.
            #expect(try await Self.eventually {
                files = try await env.stores.files.files(messageID: message.id)
                return files.first?.extractStatus == .failed
            })
            let file = try #require(files.first)
            #expect(file.name == "q3.pdf")
            let document = try #require(try await env.stores.documents.document(id: file.id, ownerID: ownerID))
            #expect(document.status == .failed)
            #expect(document.error?.contains("the download failed") == true)
            #expect(document.error?.contains("404") == true, "the error says what WhatsApp answered")
            #expect(try await Self.eventually { graph.recorded.contains { $0.text == WhatsAppReceived.downloadFailedReply(type: "document") } })
            // The reply is queued for delivery before the message is marked answered: wait for both.
            #expect(try await Self.eventually { try await env.stores.messages.message(id: message.id)?.status == .completed })
        }
    }

    @Test func otherTypesAreStoredWithANoteAndAnsweredPolitelyOnce() async throws {
        try await Self.withChannel { env, graph, client, url, ownerID in
            let location = #"{"from":"15557654","id":"wamid.LOC","timestamp":"1700000000","type":"location","location":{"latitude":38.7,"longitude":-9.1}}"#
            let sticker = #"{"from":"15557654","id":"wamid.STK","timestamp":"1700000001","type":"sticker","sticker":{"id":"777","mime_type":"image/webp"}}"#
            let strange = #"{"from":"15557654","id":"wamid.NEW","timestamp":"1700000002","type":"hologram"}"#
            let body = Self.payload([location, sticker, strange])
            #expect(try await WhatsAppWebhookTests.post(client, url, body).json["accepted"] as? Int == 3)
            #expect(try await WhatsAppWebhookTests.post(client, url, body).json["duplicates"] as? Int == 3, "Meta's retry")

            let stored = try #require(try await Self.message(env, ownerID, "wamid.LOC"))
            #expect(stored.content == "[location message: not supported]")
            #expect(try await Self.eventually {
                let replies = try await env.stores.messages.messages(chatID: stored.chatID, ownerID: ownerID, limit: 20, beforeID: nil, afterID: nil)
                    .filter { $0.role == .assistant }
                return replies.count == 3 && replies.allSatisfy { $0.deliveredAt != nil }
            }, "each got its answer, delivered")
            let texts = graph.recorded.compactMap(\.text)
            #expect(texts.count == 3, "one answer each, however often Meta delivers, and no AI turn")
            #expect(Set(texts) == [
                WhatsAppReceived.unsupportedReply(type: "location"), WhatsAppReceived.unsupportedReply(type: "sticker"),
                WhatsAppReceived.unsupportedReply(type: "hologram"),
            ])
            #expect(try await env.stores.messages.message(id: stored.id)?.status == .completed)
            #expect(graph.mediaRequests.withLock { $0 }.isEmpty, "a sticker is not downloaded")
        }
    }
}
