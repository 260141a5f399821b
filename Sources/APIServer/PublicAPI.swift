import Channels
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Queue
import RedisClient
import Storage
import SwitchboardCore
import Turns

/// The handlers of `/api/v1`. Every read and write is scoped to the caller: a row of another
/// user is answered exactly like a row that does not exist (404).
struct PublicAPI: Sendable {
    let dependencies: APIDependencies
    let recentSubmissions = RecentSubmissions()
    var settings: APISettings { dependencies.settings }
    var stores: Stores { dependencies.stores }
    var idempotency: IdempotencyStore {
        IdempotencyStore(redis: dependencies.redis, ttl: settings.idempotencyTTL, lockTTL: settings.idempotencyLockTTL)
    }

    // MARK: - Account

    func me(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let user = try context.requireCaller().user
        return try APIJSON.response(UserJSON(id: user.id, email: user.email, name: user.name, role: user.role.rawValue))
    }

    // MARK: - Chats

    func createChat(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        var request = request
        let body = try await APIJSON.decode(CreateChatBody.self, from: &request, maxBytes: settings.maxBodyBytes, emptyIs: CreateChatBody(title: nil))
        let title = try validTitle(body.title) ?? "New chat"
        let chat = try await stores.chats.createChat(ownerID: caller.user.id, title: title, channel: .web, externalThreadKey: nil)
        return try APIJSON.response(ChatJSON(chat), status: .created, headers: [.location: "/api/v1/chats/\(chat.id)"])
    }

    func listChats(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let limit = try pageSize(request)
        let before = try cursor(request, name: "cursor")
        let chats = try await stores.chats.chats(ownerID: caller.user.id, limit: limit + 1, beforeID: before)
        let page = Array(chats.prefix(limit))
        let next = chats.count > limit ? page.last.map { String($0.id) } : nil
        return try APIJSON.response(PageJSON(data: page.map(ChatJSON.init), nextCursor: next))
    }

    func getChat(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let chat = try await ownedChat(context)
        return try APIJSON.response(ChatJSON(chat))
    }

    func deleteChat(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let id = try pathID(context, "chatId", what: "chat")
        guard try await stores.chats.deleteChat(id: id, ownerID: caller.user.id) else { throw SwitchboardError.notFound("no chat \(id)") }
        return Response(status: .noContent)
    }

    // MARK: - Messages

    func listMessages(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let chat = try await ownedChat(context)
        let limit = try pageSize(request)
        let before = try cursor(request, name: "cursor")
        let after = try cursor(request, name: "after")
        if before != nil && after != nil { throw SwitchboardError.invalidField("after", "cannot be combined with cursor") }
        let messages = try await stores.messages.messages(
            chatID: chat.id, ownerID: caller.user.id, limit: limit + 1, beforeID: before, afterID: after)
        let page = Array(messages.prefix(limit))
        let next: String?
        if messages.count > limit, let last = page.last {
            next = String(last.id)
        } else {
            next = nil
        }
        return try APIJSON.response(PageJSON(data: page.map(MessageJSON.init), nextCursor: next))
    }

    /// POST /chats/{chatId}/messages
    func postToChat(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let chatID = try pathID(context, "chatId", what: "chat")
        var request = request
        let body = try await APIJSON.decode(PostMessageBody.self, from: &request, maxBytes: settings.maxBodyBytes)
        let accepted = try await submit(
            caller: caller, content: body.content, chatID: chatID, title: nil, fileIDs: body.fileIds ?? [],
            idempotencyKey: try IdempotencyStore.key(of: request), logger: context.logger)
        return try APIJSON.response(accepted, status: .accepted, headers: [.location: accepted.events])
    }

    /// POST /messages (a new chat unless `chatId` is given)
    func postMessage(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        var request = request
        let body = try await APIJSON.decode(SubmitMessageBody.self, from: &request, maxBytes: settings.maxBodyBytes)
        let accepted = try await submit(
            caller: caller, content: body.content, chatID: body.chatId, title: body.title, fileIDs: body.fileIds ?? [],
            idempotencyKey: try IdempotencyStore.key(of: request), logger: context.logger)
        return try APIJSON.response(accepted, status: .accepted, headers: [.location: accepted.events])
    }

    func getMessage(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let caller = try context.requireCaller()
        let message = try await ownedMessage(context)
        async let tasks = stores.tasks.tasks(messageID: message.id, ownerID: caller.user.id)
        async let reply = stores.messages.message(ownerID: caller.user.id, idempotencyKey: Turns.replyKey(for: message.id))
        async let files = stores.files.files(messageID: message.id)
        var detail = MessageDetailJSON(
            message: MessageJSON(message), tasks: try await tasks.map(TaskJSON.init), reply: try await reply.map(MessageJSON.init),
            events: Links.events(message.id))
        // A file belongs to the owner of the message that named it (`fileIds` are checked on submit).
        detail.fileIds = try await files.filter { $0.ownerID == caller.user.id }.map(\.id)
        if let replyID = detail.reply?.id { detail.sources = try await stores.documents.sources(messageID: replyID) }
        return try APIJSON.response(detail)
    }

    /// POST /messages/{id}/stop: the worker sees the flag within its poll interval and ends the
    /// stream with `error {code: cancelled}`; a turn no worker has started is ended here.
    func stop(_ request: Request, _ context: APIRequestContext) async throws -> Response {
        let message = try await ownedMessage(context)
        guard message.role == .user else {
            throw SwitchboardError(.conflict, status: 409, "message \(message.id) is not a turn that can be stopped")
        }
        guard !message.status.isFinal else {
            throw SwitchboardError(.conflict, status: 409, "the turn has already ended (\(message.status.rawValue))")
        }
        let cancellation = TurnCancellation(redis: dependencies.redis, settings: settings.turnStream)
        try await cancellation.request(messageID: message.id)
        var status = "cancelling"
        if message.status == .queued,
           try await stores.messages.updateStatus(id: message.id, to: .cancelled, error: "stopped by the user", from: [.queued]) {
            let writer = TurnStreamWriter(redis: dependencies.redis, messageID: message.id, settings: settings.turnStream)
            try await writer.end(.cancelled)
            status = "cancelled"
        }
        return try APIJSON.response(StopJSON(messageId: message.id, status: status), status: .accepted)
    }

    // MARK: - Submitting a turn

    /// Hands the message to the web chat channel (`WebChatInbound` → `ChannelIntake`), which
    /// stores it as `queued` and queues its turn (or stores it as failed and answers 503 when the
    /// queue is unreachable, so nothing waits for a job that does not exist).
    ///
    /// With an `idempotencyKey` the message is stored under it, so a retry whose first attempt was
    /// stored but never answered (the Redis record of the key missing: a lost answer, a crashed
    /// node) gets that message back, with its turn queued if it still needs one, not a second one.
    func submit(
        caller: AuthenticatedCaller, content: String, chatID: Int64?, title: String?, fileIDs: [Int64] = [],
        idempotencyKey: String? = nil, logger: Logger
    ) async throws -> AcceptedJSON {
        let submission = WebSubmission(
            userID: caller.user.id, content: try validContent(content), chatID: chatID, title: try validTitle(title),
            idempotencyKey: idempotencyKey)
        let files = try await ownedFiles(fileIDs, ownerID: caller.user.id)
        let documents = stores.documents
        let ownerID = caller.user.id
        // Attached before the turn is queued, so the turn always sees them.
        var attach: (@Sendable (Message) async throws -> Void)?
        if !files.isEmpty {
            attach = { @Sendable (message: Message) async throws in
                try await documents.attach(fileIDs: files, messageID: message.id, ownerID: ownerID)
            }
        }
        var accepted: ChannelIntake.Accepted?
        for inbound in try WebChatInbound().accept(submission) {
            accepted = try await dependencies.intake.accept(inbound, logger: logger, beforeQueuing: attach)
        }
        guard let accepted else { throw SwitchboardError.badRequest("the submission carried no message") }
        let message = accepted.message
        if accepted.isDuplicate {
            guard message.content == submission.content, chatID.map({ $0 == message.chatID }) ?? true else {
                throw SwitchboardError(.idempotencyMismatch, status: 422, "Idempotency-Key was used with a different request")
            }
            // Queued on the first attempt or not (it may have stopped between storing and
            // queuing): the turn's own job key makes this a no-op when it was.
            if message.status == .queued { try await Turns.enqueue(messageID: message.id, on: dependencies.jobs) }
        }
        recentSubmissions.accepted(messageID: message.id, ownerID: caller.user.id)
        return AcceptedJSON(messageId: message.id, chatId: message.chatID, status: "queued", events: Links.events(message.id))
    }

    // MARK: - Validation and lookups

    static let maxFilesPerMessage = 20

    /// `fileIds` of a message: each must be one of the caller's files (another user's is a 404).
    func ownedFiles(_ ids: [Int64], ownerID: Int64) async throws -> [Int64] {
        guard !ids.isEmpty else { return [] }
        let unique = Array(Set(ids)).sorted()
        if unique.count > Self.maxFilesPerMessage {
            throw SwitchboardError.invalidField("fileIds", "may name at most \(Self.maxFilesPerMessage) files")
        }
        let found = Set(try await stores.documents.documents(ids: unique, ownerID: ownerID).map(\.id))
        if let missing = unique.first(where: { !found.contains($0) }) { throw SwitchboardError.notFound("no file \(missing)") }
        return unique
    }

    func validContent(_ content: String) throws -> String {
        if content.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw SwitchboardError.invalidField("content", "must not be empty") }
        if content.count > settings.maxMessageCharacters {
            throw SwitchboardError.invalidField("content", "is longer than \(settings.maxMessageCharacters) characters")
        }
        return content
    }

    func validTitle(_ title: String?) throws -> String? {
        guard let title else { return nil }
        let trimmed = title.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty { throw SwitchboardError.invalidField("title", "must not be empty") }
        if trimmed.count > settings.maxTitleCharacters {
            throw SwitchboardError.invalidField("title", "is longer than \(settings.maxTitleCharacters) characters")
        }
        return trimmed
    }

    func pageSize(_ request: Request) throws -> Int {
        guard let raw = request.uri.queryParameters["limit"] else { return settings.defaultPageSize }
        guard let limit = Int(String(raw)), (1...settings.maxPageSize).contains(limit) else {
            throw SwitchboardError.invalidField("limit", "must be an integer from 1 to \(settings.maxPageSize)")
        }
        return limit
    }

    func cursor(_ request: Request, name: String) throws -> Int64? {
        guard let raw = request.uri.queryParameters[name[...]] else { return nil }
        guard let id = Int64(String(raw)), id > 0 else { throw SwitchboardError.invalidField(name, "is not a valid cursor") }
        return id
    }

    /// An id from the path; anything that is not a positive integer cannot name a row (404).
    func pathID(_ context: APIRequestContext, _ name: String, what: String) throws -> Int64 {
        guard let raw = context.parameters.get(name), let id = Int64(raw), id > 0 else {
            throw SwitchboardError.notFound("no \(what) \(context.parameters.get(name) ?? "")")
        }
        return id
    }

    func ownedChat(_ context: APIRequestContext) async throws -> Chat {
        let caller = try context.requireCaller()
        let id = try pathID(context, "chatId", what: "chat")
        guard let chat = try await stores.chats.chat(id: id, ownerID: caller.user.id) else { throw SwitchboardError.notFound("no chat \(id)") }
        return chat
    }

    func ownedMessage(_ context: APIRequestContext) async throws -> Message {
        let caller = try context.requireCaller()
        let id = try pathID(context, "messageId", what: "message")
        guard let message = try await stores.messages.message(id: id, ownerID: caller.user.id) else {
            throw SwitchboardError.notFound("no message \(id)")
        }
        return message
    }
}
