import Channels
import Foundation
import Logging
import Storage
@testable import SwitchboardApp
import SwitchboardConfig
import SwitchboardCore
import TestSupport
import Testing

/// The worker role's IMAP poller as it runs (`EmailAssembly.imapPoller`, a periodic service),
/// twice over as two workers would run it, against Dovecot on loopback: each polls on its
/// interval, unseen mail is stored and only then marked seen, each mail is fetched by one of
/// them only (the per-mailbox Redis lock), and mail that cannot be stored stays unseen.
@Suite("IMAP poller service", .serialized)
struct IMAPPollerServiceTests {
    static var logger: Logger {
        var logger = Logger(label: "imap-poller-tests")
        logger.logLevel = .error
        return logger
    }

    static func mail(_ number: Int) -> [UInt8] {
        Array(("From: Ada <ada@example.com>\r\nTo: support@shop.example\r\nSubject: Question \(number)\r\n"
            + "Message-ID: <poll-\(number)@example.com>\r\nDate: Fri, 4 Dec 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            + "Content-Type: text/plain; charset=utf-8\r\n\r\nQuestion number \(number).\r\n").utf8)
    }

    @Test func twoWorkersPollOnTheirIntervalAndTakeEachMailOnce() async throws {
        let dovecot = try await DovecotServer()
        defer { dovecot.stop() }
        let redis = try TestRedis.client(logger: Self.logger)
        let result: Result<Void, any Error>
        do {
            result = .success(try await ThrowawayDatabase.with(logger: Self.logger) { database, _ in
                let stores = Stores(database: database)
                let owner = try await stores.users.createUser(email: "imap-\(UInt32.random(in: 0...UInt32.max))@example.com", name: "", role: .user)
                _ = try await stores.connections.createConnection(NewChannelConnection(
                    ownerID: owner.id, type: EmailConnection.type, name: "mailbox", publicID: "ch_imap\(UInt32.random(in: 0...UInt32.max))",
                    settings: ["address": "support@shop.example", "imapUrl": dovecot.url, "imapUsername": dovecot.user, "imapStartTls": "optional"],
                    sealedSecrets: try SecretBox.development().seal(["imapPassword": dovecot.password])))
                // Four messages a day: the fifth mail cannot be stored.
                let settings = try TestServices.settings(["SB_CHANNELS_EMAIL_IMAP_POLL_SECONDS": "5", "SB_QUOTAS_MESSAGES_PER_DAY": "4"])
                func messages() async throws -> [Message] {
                    var all: [Message] = []
                    for chat in try await stores.chats.chats(ownerID: owner.id, limit: 50, beforeID: nil) {
                        all += try await stores.messages.messages(chatID: chat.id, ownerID: owner.id, limit: 50, beforeID: nil, afterID: nil)
                    }
                    return all
                }
                let mailbox = IMAPMailbox(
                    serverURL: dovecot.url, mailbox: "INBOX", options: CurlOptions(username: dovecot.user, password: dovecot.password, requireTLS: false))

                for number in 1...3 { try dovecot.deliver(Self.mail(number)) }
                let workers = (0..<2).map { _ in
                    EmailAssembly.imapPoller(settings: settings, stores: stores, redis: redis, secrets: .development(), logger: Self.logger)
                }
                let tasks = workers.map { worker in Task { try await worker.run() } }
                defer { for task in tasks { task.cancel() } }

                #expect(try await eventually(within: .seconds(60)) { try await messages().count == 3 }, "the first polls stored the mail")
                #expect(try await eventually(within: .seconds(20)) { try await mailbox.unseenUIDs().isEmpty }, "and then marked it seen")
                // Mail that arrives later is taken by a later poll of either worker.
                try dovecot.deliver(Self.mail(4))
                #expect(try await eventually(within: .seconds(60)) { try await messages().count == 4 }, "a later poll took the new mail")
                #expect(try await eventually(within: .seconds(20)) { try await mailbox.unseenUIDs().isEmpty })
                #expect(try await eventually(within: .seconds(10)) { dovecot.bodiesFetched == 4 })
                #expect(dovecot.bodiesFetched == 4, "each mail fetched once, by one of the two workers")

                // The fifth mail is over the owner's quota: fetched, not stored, so never marked seen.
                try dovecot.deliver(Self.mail(5))
                #expect(try await eventually(within: .seconds(60)) { dovecot.bodiesFetched >= 6 }, "polled again and again")
                #expect(try await mailbox.unseenUIDs().count == 1)
                #expect(try await messages().count == 4)
                #expect(Set(try await messages().compactMap(\.externalID)).count == 4, "no mail stored twice")
                for task in tasks { task.cancel() }
                for task in tasks { _ = await task.result }
            })
        } catch {
            result = .failure(error)
        }
        await TestRedis.discard(redis)
        try result.get()
    }
}
