/// The email channel's part of the worker role: the IMAP poller, run every
/// `channels.email_imap_poll_seconds` (each mailbox by one worker at a time).
import Channels
import Logging
import Queue
import RedisClient
import ServiceLifecycle
import Storage
import SwitchboardConfig

enum EmailAssembly {
    static func imapPoller(settings: Settings, stores: Stores, redis: RedisClient, secrets: SecretBox, logger: Logger) -> any Service {
        let email = Clients.email(settings)
        let intake = ChannelIntake(stores: stores, jobs: JobQueue(client: redis, logger: logger), redis: redis, quotas: Clients.quotas(settings))
        let receiver = EmailReceiver(
            stores: stores, intake: intake, redis: redis,
            attachments: EmailAttachmentStore(files: stores.files, directory: email.attachmentsDirectory, maxBytes: email.maxAttachmentBytes))
        let poller = IMAPPoller(stores: stores, secrets: secrets, receiver: receiver, redis: redis, caFile: email.caFile)
        return PeriodicService(name: "imap-poll", interval: .seconds(email.imapPollSeconds), logger: logger) { logger in
            try await poller.pollAll(logger: logger)
        }
    }
}
