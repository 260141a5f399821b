/// IMAP polling for mailboxes without a webhook: every email connection with an `imapUrl` is read
/// by one worker at a time (a Redis lock per connection, held while it polls); each unseen
/// message is fetched without marking it, threaded and stored like a webhook's mail, and only
/// then marked seen, so a worker that dies in between leaves it for the next poll (and the
/// Message-ID dedupes the second read).
import Foundation
import Logging
import Mail
import RedisClient
import Storage
import SwitchboardCore

public struct IMAPPoller: Sendable {
    public var stores: Stores
    public var secrets: SecretBox
    public var receiver: EmailReceiver
    public var redis: RedisClient
    /// Extra CA certificates for imaps / STARTTLS.
    public var caFile: String?
    /// How long a poll may hold a connection's lock.
    public var lockSeconds: Int
    /// Most messages read from one mailbox per poll.
    public var batch: Int

    public init(stores: Stores, secrets: SecretBox, receiver: EmailReceiver, redis: RedisClient, caFile: String? = nil, lockSeconds: Int = 300, batch: Int = 50) {
        self.stores = stores
        self.secrets = secrets
        self.receiver = receiver
        self.redis = redis
        self.caFile = caFile
        self.lockSeconds = lockSeconds
        self.batch = batch
    }

    /// What one poll of one mailbox did.
    public struct Report: Sendable, Equatable {
        public var stored = 0
        public var duplicates = 0
        public var ignored = 0
        public var failed = 0
        /// Another worker held the mailbox's lock: nothing was read.
        public var skipped = false
        public init() {}
    }

    /// Polls every email connection that has an IMAP server.
    public func pollAll(logger: Logger) async throws {
        for stored in try await stores.connections.connections(type: EmailConnection.type) where stored.settings["imapUrl"] != nil {
            do {
                let connection = try EmailConnection(stored, secrets: secrets)
                _ = try await poll(connection, logger: logger)
            } catch {
                logger.warning("IMAP poll failed", metadata: ["connection": "\(stored.id)", "error": "\(error)"])
            }
        }
    }

    static func lockKey(_ connectionID: Int64) -> String { "email:imap-lock:\(connectionID)" }

    /// One poll of one mailbox, under its lock.
    public func poll(_ connection: EmailConnection, logger: Logger) async throws -> Report {
        var report = Report()
        guard let serverURL = connection.imapURL else { return report }
        let holder = UUID().uuidString
        guard try await redis.set(Self.lockKey(connection.id), holder, condition: .nx, expiration: .seconds(lockSeconds)) else {
            report.skipped = true
            return report
        }
        do {
            try await read(connection, serverURL: serverURL, into: &report, logger: logger)
        } catch {
            await release(connection.id, holder: holder)
            throw error
        }
        await release(connection.id, holder: holder)
        return report
    }

    /// Frees a mailbox's lock if this poll still holds it (one that outlived its lock must not free another's).
    func release(_ connectionID: Int64, holder: String) async {
        let key = Self.lockKey(connectionID)
        if let value = try? await redis.get(key), String(decoding: value, as: UTF8.self) == holder { _ = try? await redis.del(key) }
    }

    func read(_ connection: EmailConnection, serverURL: String, into report: inout Report, logger: Logger) async throws {
        let box = IMAPMailbox(
            serverURL: serverURL, mailbox: connection.imapMailbox,
            options: CurlOptions(
                username: connection.imapUsername, password: connection.imapPassword, requireTLS: connection.imapStartTLS == .required,
                caFile: caFile))
        for uid in try await box.unseenUIDs().prefix(batch) {
            guard let raw = try await box.fetch(uid: uid) else { continue }
            do {
                let outcome = try await receiver.receive(ReceivedMail(mail: MIMEParser.parse(raw)), connection: connection, logger: logger)
                if outcome.isDuplicate { report.duplicates += 1 } else if outcome.message.status == .cancelled { report.ignored += 1 } else { report.stored += 1 }
                try await box.markSeen(uid: uid)
            } catch let error as SwitchboardError where error.status == 413 {
                // Too large ever to store: marked seen so it is not read again every poll.
                logger.warning("IMAP message refused", metadata: ["connection": "\(connection.id)", "uid": "\(uid)", "error": "\(error)"])
                try await box.markSeen(uid: uid)
                report.failed += 1
            }
        }
    }
}
