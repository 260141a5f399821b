import APIServer
import Channels
import Files
import Foundation
import HummingbirdTesting
import Mail
import RedisClient
import Storage
import SwitchboardCore
import TestSupport
import Testing
import TurnTestSupport

/// IMAP polling against Debian's Dovecot on loopback: unseen mail is fetched without marking it,
/// stored and threaded like a webhook's, and only then marked seen; a second poll reads nothing
/// new, and a mailbox another worker holds is left alone.
@Suite("Email IMAP polling", .serialized)
struct EmailIMAPTests {
    @Test func unseenMailIsStoredThenMarkedSeenByOnePoller() async throws {
        let dovecot = try await DovecotServer()
        defer { dovecot.stop() }
        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            let created = try await env.application().test(.router) { client in
                try await EmailWebhookTests.createChannel(client, key: key, extra: [
                    "imapUrl": dovecot.url, "imapUsername": dovecot.user, "imapPassword": dovecot.password, "imapStartTls": "optional",
                ])
            }
            let channelID = Int64(try #require(created["id"] as? Int))
            let stored = try #require(try await env.stores.connections.connection(id: channelID, ownerID: user.id))
            let connection = try EmailConnection(stored, secrets: env.dependencies().secrets)
            try dovecot.deliver(Array(EmailWebhookTests.raw(subject: "From the mailbox", id: "imap-1@example.com", body: "First by IMAP.").utf8))
            try dovecot.deliver(Array(EmailWebhookTests.raw(
                from: "Bob <bob@example.org>", subject: "Second", id: "imap-2@example.org",
                extraHeaders: "", body: "Second by IMAP, with a line that looks like\r\n* 1 FETCH (an IMAP response)\r\nto a careless reader.").utf8))

            let mailbox = IMAPMailbox(
                serverURL: dovecot.url, mailbox: "INBOX",
                options: CurlOptions(username: dovecot.user, password: dovecot.password, requireTLS: false))
            let unseen = try await mailbox.unseenUIDs()
            #expect(unseen.count == 2)
            // Fetching alone does not mark a message seen.
            let peeked = try #require(try await mailbox.fetch(uid: unseen[1]))
            #expect(MIMEParser.parse(peeked).text.contains("* 1 FETCH (an IMAP response)"))
            #expect(try await mailbox.unseenUIDs() == unseen)

            let receiver = EmailReceiver(
                stores: env.stores, intake: ChannelIntake(stores: env.stores, jobs: env.jobs, redis: env.redis), redis: env.redis,
                attachments: EmailAttachmentStore(
                    intake: FileIntake(stores: env.stores, jobs: env.jobs, configuration: FilesConfiguration(storageDirectory: NSTemporaryDirectory() + "sb-imap-files")),
                    maxBytes: 1 << 20))
            let poller = IMAPPoller(stores: env.stores, secrets: env.dependencies().secrets, receiver: receiver, redis: env.redis)

            // Another worker holds the mailbox: this one reads nothing.
            _ = try await env.redis.set("email:imap-lock:\(connection.id)", "someone-else", expiration: .seconds(30))
            #expect(try await poller.poll(connection, logger: TestEnvironment.logger).skipped)
            #expect(try await mailbox.unseenUIDs().count == 2)
            _ = try await env.redis.del("email:imap-lock:\(connection.id)")

            let report = try await poller.poll(connection, logger: TestEnvironment.logger)
            #expect(report.stored == 2)
            #expect(try await mailbox.unseenUIDs().isEmpty, "marked seen once stored")
            let chats = try await env.stores.chats.chats(ownerID: user.id, limit: 10, beforeID: nil)
            #expect(Set(chats.map(\.title)) == ["From the mailbox", "Second"])
            #expect(try await TurnTestEnvironment.queuedTurnIDs(env.redis).count == 2)

            let again = try await poller.poll(connection, logger: TestEnvironment.logger)
            #expect(again.stored == 0 && again.duplicates == 0)
        }
    }

    @Test func imapsIsReadWithTheServersCAAndAWrongCAIsRefusedClearly() async throws {
        let dovecot = try await DovecotServer(tls: true)
        defer { dovecot.stop() }
        let ca = try #require(dovecot.certificate)
        #expect(dovecot.url.hasPrefix("imaps://"))
        let elsewhere = NSTemporaryDirectory() + "sb-wrong-ca-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: elsewhere) }
        let (wrongCA, _) = try EmailPeers.selfSignedCertificate(in: elsewhere)
        try dovecot.deliver(Array(EmailWebhookTests.raw(subject: "Over TLS", id: "imaps-1@example.com", body: "Sent to an imaps mailbox.").utf8))

        try await TestEnvironment.with { env in
            let (user, key) = try await env.makeUser()
            let created = try await env.application().test(.router) { client in
                try await EmailWebhookTests.createChannel(client, key: key, extra: [
                    "imapUrl": dovecot.url, "imapUsername": dovecot.user, "imapPassword": dovecot.password,
                ])
            }
            let channelID = Int64(try #require(created["id"] as? Int))
            let stored = try #require(try await env.stores.connections.connection(id: channelID, ownerID: user.id))
            let connection = try EmailConnection(stored, secrets: env.dependencies().secrets)
            let directory = NSTemporaryDirectory() + "sb-imaps-files-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: directory) }
            func poller(caFile: String) -> IMAPPoller {
                let receiver = EmailReceiver(
                    stores: env.stores, intake: ChannelIntake(stores: env.stores, jobs: env.jobs, redis: env.redis), redis: env.redis,
                    attachments: EmailAttachmentStore(
                        intake: FileIntake(stores: env.stores, jobs: env.jobs, configuration: FilesConfiguration(storageDirectory: directory)),
                        maxBytes: 1 << 20))
                return IMAPPoller(stores: env.stores, secrets: env.dependencies().secrets, receiver: receiver, redis: env.redis, caFile: caFile)
            }

            // A CA that did not sign the server's certificate: refused, saying why, and nothing read.
            do {
                _ = try await poller(caFile: wrongCA).poll(connection, logger: TestEnvironment.logger)
                Issue.record("a server whose certificate is not trusted was read")
            } catch let failure as CurlFailure {
                #expect(failure.isUntrustedCertificate)
                #expect(failure.description.contains("certificate is not trusted"), "\(failure)")
                #expect(failure.description.contains("channels.email_ca_file"))
            }
            #expect(try await env.stores.chats.chats(ownerID: user.id, limit: 10, beforeID: nil).isEmpty)

            // Its own CA: read over TLS, stored, marked seen.
            let report = try await poller(caFile: ca).poll(connection, logger: TestEnvironment.logger)
            #expect(report.stored == 1)
            let mailbox = IMAPMailbox(
                serverURL: dovecot.url, mailbox: "INBOX", options: CurlOptions(username: dovecot.user, password: dovecot.password, caFile: ca))
            #expect(try await mailbox.unseenUIDs().isEmpty)
            #expect(try await env.stores.chats.chats(ownerID: user.id, limit: 10, beforeID: nil).map(\.title) == ["Over TLS"])
            #expect(dovecot.log.contains("TLS"), "the session was encrypted")
        }
    }
}
