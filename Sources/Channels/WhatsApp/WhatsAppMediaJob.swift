/// The `whatsapp_media` job: fetches the media of an image, document, audio or video message
/// (`GET {graph}/{media id}` answers its URL, downloaded with the connection's bearer token) and
/// stores it as the message's file through the files module's intake, so a document is extracted
/// and indexed like any upload. Then the message's turn is queued, or, when the file cannot be
/// read (an image, a voice note) or could not be downloaded, the contact gets a polite answer
/// instead. Runs on the `extract` queue, off the webhook's request: at-least-once and idempotent
/// (a rerun finds the message's file and downloads nothing). Rate limits, server errors and
/// timeouts are retried; on the last attempt, and for any other refusal, the file is recorded
/// `failed` with the reason, and the message is kept.
import AsyncHTTPClient
import Files
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Queue
import Storage
import SwitchboardCore
import Turns

public struct WhatsAppMediaJob: JobPayload, Equatable {
    public static let name = "whatsapp_media"
    public static let queue: QueueName = .extract
    public var messageId: Int64
    public var connectionId: Int64
    public var media: WhatsAppMedia

    public init(messageId: Int64, connectionId: Int64, media: WhatsAppMedia) {
        self.messageId = messageId
        self.connectionId = connectionId
        self.media = media
    }

    /// Queues the download of a stored message's media, once per message.
    public static func enqueue(messageID: Int64, connectionID: Int64, media: WhatsAppMedia, on producer: any JobProducer) async throws {
        _ = try await producer.enqueue(
            WhatsAppMediaJob(messageId: messageID, connectionId: connectionID, media: media), on: queue,
            options: EnqueueOptions(idempotencyKey: "whatsapp-media:\(messageID)"))
    }

    /// Registers the job's handler (for the worker role).
    public static func register(in registry: inout JobRegistry, fetcher: WhatsAppMediaFetcher) {
        registry.register(WhatsAppMediaJob.self) { job, context in
            _ = try await fetcher.run(job, isLastAttempt: context.attempt >= context.maxAttempts, logger: context.logger)
        }
    }
}

/// Runs `WhatsAppMediaJob`s.
public struct WhatsAppMediaFetcher: Sendable {
    let stores: Stores
    let secrets: SecretBox
    let graphURL: String
    let files: FileIntake
    let intake: ChannelIntake
    let http: HTTPClient
    let timeout: TimeAmount

    public init(
        stores: Stores, secrets: SecretBox, graphURL: String, files: FileIntake, intake: ChannelIntake, http: HTTPClient = .shared,
        timeout: TimeAmount = .seconds(60)
    ) {
        self.stores = stores
        self.secrets = secrets
        self.graphURL = graphURL.hasSuffix("/") ? String(graphURL.dropLast()) : graphURL
        self.files = files
        self.intake = intake
        self.http = http
        self.timeout = timeout
    }

    public enum Outcome: Sendable, Equatable {
        /// The file is readable: the turn is queued.
        case turnQueued
        /// The file cannot be read or was not downloaded: the contact was answered.
        case answered
        /// The message is gone, or was answered before.
        case nothingToDo
    }

    public func run(_ job: WhatsAppMediaJob, isLastAttempt: Bool, logger: Logger) async throws -> Outcome {
        guard let message = try await stores.messages.message(id: job.messageId) else { return .nothingToDo }
        let file: StoredFile
        if let earlier = try await stores.files.files(messageID: message.id).first {
            file = earlier
        } else {
            file = try await fetchAndStore(job, message: message, isLastAttempt: isLastAttempt, logger: logger)
        }
        guard message.status == .queued else { return .nothingToDo }
        let hold = TurnHold(redis: intake.redis)
        if file.extractStatus != .failed {
            try await Turns.enqueue(messageID: message.id, on: intake.jobs)
            try await hold.release(messageID: message.id)
            return .turnQueued
        }
        let reply = file.storagePath.isEmpty
            ? WhatsAppReceived.downloadFailedReply(type: job.media.kind) : WhatsAppReceived.unsupportedReply(type: job.media.kind)
        try await intake.answerWithoutTurn(message, text: reply)
        try await hold.release(messageID: message.id)
        return .answered
    }

    /// Downloads the media and stores it as the message's file; a download that failed for good
    /// is stored as a `failed` file without bytes. Throws (for a retry) only a transient failure
    /// before the last attempt.
    func fetchAndStore(_ job: WhatsAppMediaJob, message: Message, isLastAttempt: Bool, logger: Logger) async throws -> StoredFile {
        let name = Self.fileName(job.media)
        let document: DocumentFile
        do {
            let (data, type) = try await download(job, ownerID: message.ownerID)
            document = try await files.attach(
                ownerID: message.ownerID, name: name, data: data, mimeType: type ?? job.media.mimeType, chatID: message.chatID,
                messageID: message.id)
        } catch let error as MediaDownloadError {
            if error.isTransient && !isLastAttempt { throw error }
            logger.warning("WhatsApp media download failed", metadata: ["message_id": "\(message.id)", "error": "\(error.message)"])
            document = try await files.recordFailed(
                ownerID: message.ownerID, name: name, mimeType: job.media.mimeType ?? "application/octet-stream", chatID: message.chatID,
                messageID: message.id, error: "the download failed: \(error.message)")
        }
        guard let stored = try await stores.files.file(id: document.id, ownerID: message.ownerID) else {
            throw SwitchboardError.unavailable("file \(document.id) vanished while it was stored")
        }
        return stored
    }

    /// The media's bytes and content type: its URL from the Graph API, then the URL itself, both
    /// with the connection's access token.
    func download(_ job: WhatsAppMediaJob, ownerID: Int64) async throws -> (Data, String?) {
        guard let stored = try await stores.connections.connection(id: job.connectionId), stored.ownerID == ownerID else {
            throw MediaDownloadError("the WhatsApp connection \(job.connectionId) was deleted", isTransient: false)
        }
        let connection = try WhatsAppConnection(stored, secrets: secrets)
        let (meta, _) = try await get("\(graphURL)/\(job.media.id)", token: connection.accessToken, limit: 1 << 20, what: "the media's URL")
        let json = (try? JSONSerialization.jsonObject(with: meta)) as? [String: Any]
        guard let url = json?["url"] as? String, url.hasPrefix("https://") || url.hasPrefix("http://") else {
            throw MediaDownloadError("the Graph API did not answer a URL for media \(job.media.id)", isTransient: false)
        }
        let limit = files.configuration.maxUploadBytes
        let (data, contentType) = try await get(url, token: connection.accessToken, limit: limit, what: "the media")
        return (data, (json?["mime_type"] as? String) ?? contentType)
    }

    func get(_ url: String, token: String, limit: Int, what: String) async throws -> (Data, String?) {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: timeout)
        } catch {
            throw MediaDownloadError("\(what) could not be fetched: \(error)", isTransient: true)
        }
        let status = Int(response.status.code)
        if let length = response.headers.first(name: "Content-Length").flatMap(Int.init), length > limit {
            throw MediaDownloadError("\(what) has \(length) bytes; at most \(limit) are accepted", isTransient: false)
        }
        let body: ByteBuffer
        do {
            body = try await response.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw MediaDownloadError("\(what) is larger than \(limit) bytes", isTransient: false)
        } catch {
            throw MediaDownloadError("\(what) could not be read: \(error)", isTransient: true)
        }
        guard (200..<300).contains(status) else {
            let json = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any]
            let text = ((json?["error"] as? [String: Any])?["message"] as? String) ?? "HTTP \(status)"
            throw MediaDownloadError("\(what): WhatsApp answered HTTP \(status): \(text)", isTransient: status == 429 || status >= 500)
        }
        return (Data(body.readableBytesView), response.headers.first(name: "Content-Type"))
    }

    /// The file's name: the document's own, else the kind and media id with an extension for its type.
    static func fileName(_ media: WhatsAppMedia) -> String {
        if let name = media.filename, !name.trimmingCharacters(in: .whitespaces).isEmpty { return name }
        let type = (media.mimeType ?? "").split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        let known = [
            "image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "audio/ogg": "ogg", "audio/mpeg": "mp3", "audio/mp4": "m4a",
            "video/mp4": "mp4", "video/3gpp": "3gp", "application/pdf": "pdf", "text/plain": "txt",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
        ]
        return "\(media.kind)-\(media.id)" + (known[type].map { ".\($0)" } ?? "")
    }
}

/// A media download that did not succeed; a transient one (429, 5xx, a timeout) is retried.
struct MediaDownloadError: Error, CustomStringConvertible {
    var message: String
    var isTransient: Bool

    init(_ message: String, isTransient: Bool) {
        self.message = message
        self.isTransient = isTransient
    }

    var description: String { message + (isTransient ? "; will retry" : "") }
}
