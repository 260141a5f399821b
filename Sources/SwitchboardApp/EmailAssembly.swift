/// The email channel's part of the worker role: the IMAP poller, run every
/// `channels.email_imap_poll_seconds` (each mailbox by one worker at a time).
import Channels
import Files
import Logging
import Queue
import RedisClient
import Storage
import SwitchboardConfig

enum EmailAssembly {
    static func imapPoller(settings: Settings, stores: Stores, redis: RedisClient, secrets: SecretBox, logger: Logger) -> PeriodicService {
        let email = Clients.email(settings)
        let jobs = JobQueue(client: redis, logger: logger)
        let intake = ChannelIntake(stores: stores, jobs: jobs, redis: redis, quotas: Clients.quotas(settings))
        let files = FileIntake(stores: stores, jobs: jobs, configuration: FilesRuntime.configuration(settings.files))
        let receiver = EmailReceiver(
            stores: stores, intake: intake, redis: redis, attachments: EmailAttachmentStore(intake: files, maxBytes: email.maxAttachmentBytes))
        let poller = IMAPPoller(stores: stores, secrets: secrets, receiver: receiver, redis: redis, caFile: email.caFile)
        return PeriodicService(name: "imap-poll", interval: .seconds(email.imapPollSeconds), logger: logger) { logger in
            try await poller.pollAll(logger: logger)
        }
    }
}
