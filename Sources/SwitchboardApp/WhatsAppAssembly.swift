/// The WhatsApp channel's part of the worker role: the `whatsapp_media` job, which downloads a
/// media message's file from the Graph API into the files module and then queues its turn.
import Channels
import Files
import Logging
import Queue
import RedisClient
import Storage
import SwitchboardConfig

enum WhatsAppAssembly {
    static func registerMedia(
        in registry: inout JobRegistry, settings: Settings, stores: Stores, redis: RedisClient, secrets: SecretBox, logger: Logger
    ) {
        let jobs = JobQueue(client: redis, logger: logger)
        let fetcher = WhatsAppMediaFetcher(
            stores: stores, secrets: secrets, graphURL: settings.whatsAppGraphURL,
            files: FileIntake(stores: stores, jobs: jobs, configuration: FilesRuntime.configuration(settings.files)),
            intake: ChannelIntake(stores: stores, jobs: jobs, redis: redis, quotas: Clients.quotas(settings)))
        WhatsAppMediaJob.register(in: &registry, fetcher: fetcher)
    }
}
