import Foundation
import SwitchboardCore

// The seams between the rest of Switchboard and the database. Reads of rows that have an owner take
// the owner's id and return nil (or nothing) for anyone else's rows. Reads without an owner id exist
// only where the caller already holds a trusted id (a worker handling a queued job, an API-key lookup
// by hash, a public widget key).

public protocol UserStore: Sendable {
    func createUser(email: String, name: String, role: User.Role) async throws -> User
    func user(id: Int64) async throws -> User?
    func user(email: String) async throws -> User?
    func users(limit: Int, afterID: Int64?) async throws -> [User]
    /// nil when no such user.
    func updateUser(id: Int64, name: String?, role: User.Role?) async throws -> User?
    /// Deletes the user and, by cascade, everything the user owns.
    func deleteUser(id: Int64) async throws -> Bool
}

public protocol APIKeyStore: Sendable {
    func createAPIKey(userID: Int64, name: String, prefix: String, keyHash: String) async throws -> APIKey
    /// The key with this hash and its user, when the key is not revoked.
    func activeAPIKey(hash: String) async throws -> (key: APIKey, user: User)?
    func apiKey(id: Int64, ownerID: Int64) async throws -> APIKey?
    func apiKeys(ownerID: Int64) async throws -> [APIKey]
    func touchAPIKey(id: Int64, at date: Date) async throws
    /// `ownerID` nil revokes whoever owns it (administration). False when not found or already revoked.
    func revokeAPIKey(id: Int64, ownerID: Int64?) async throws -> Bool
    func deleteAPIKey(id: Int64, ownerID: Int64) async throws -> Bool
}

public protocol ChatStore: Sendable {
    func createChat(ownerID: Int64, title: String, channel: Channel, externalThreadKey: String?) async throws -> Chat
    func chat(id: Int64, ownerID: Int64) async throws -> Chat?
    /// The chat a channel thread (email thread, WhatsApp number) continues.
    func chat(ownerID: Int64, channel: Channel, externalThreadKey: String) async throws -> Chat?
    /// Newest first; pass the last id of a page as `beforeID` for the next.
    func chats(ownerID: Int64, limit: Int, beforeID: Int64?) async throws -> [Chat]
    func renameChat(id: Int64, ownerID: Int64, title: String) async throws -> Bool
    func touchChat(id: Int64) async throws
    /// Deletes the chat with its messages, tasks and files.
    func deleteChat(id: Int64, ownerID: Int64) async throws -> Bool
}

/// A message to store.
public struct NewMessage: Sendable, Hashable {
    public var chatID: Int64
    public var ownerID: Int64
    public var role: MessageRole
    public var content: String
    public var status: MessageStatus
    public var channel: Channel
    public var externalID: String?
    public var idempotencyKey: String?
    public var replyToID: Int64?
    /// Set for a reply that reaches its channel as it is stored (the turn stream's channels).
    public var deliveredAt: Date?

    public init(
        chatID: Int64, ownerID: Int64, role: MessageRole = .user, content: String, status: MessageStatus = .queued,
        channel: Channel = .web, externalID: String? = nil, idempotencyKey: String? = nil, replyToID: Int64? = nil,
        deliveredAt: Date? = nil
    ) {
        self.chatID = chatID
        self.ownerID = ownerID
        self.role = role
        self.content = content
        self.status = status
        self.channel = channel
        self.externalID = externalID
        self.idempotencyKey = idempotencyKey
        self.replyToID = replyToID
        self.deliveredAt = deliveredAt
    }
}

public protocol MessageStore: Sendable {
    /// Throws `DatabaseError` with code `.duplicateKey` when (owner, channel, externalID) was stored before.
    func insertMessage(_ message: NewMessage) async throws -> Message
    /// Creates a chat and its first message in one transaction (`message.chatID` is ignored).
    func startChat(title: String, externalThreadKey: String?, firstMessage message: NewMessage) async throws -> (chat: Chat, message: Message)
    /// Creates a chat holding `history` (already answered earlier messages, in order) and then
    /// `message`, in one transaction: all of it is stored or none.
    func startChat(title: String, history: [NewMessage], then message: NewMessage) async throws -> (chat: Chat, message: Message)
    func message(id: Int64, ownerID: Int64) async throws -> Message?
    /// Unscoped: for workers holding an id from a queued job.
    func message(id: Int64) async throws -> Message?
    /// Unscoped, several at once (any order; missing ids are left out): the api's idle checks of open turn streams.
    func messages(ids: [Int64]) async throws -> [Message]
    /// The owner's message that `channel` knows as `externalID` (a WhatsApp wamid, an email Message-ID).
    func message(ownerID: Int64, channel: Channel, externalID: String) async throws -> Message?
    func message(ownerID: Int64, idempotencyKey: String) async throws -> Message?
    /// A message and the one it replies to, in one query; nil when the message does not exist.
    func messageAndOrigin(id: Int64) async throws -> (message: Message, origin: Message?)?
    /// A message with what its turn reads before it runs, in one query (nil when it does not exist).
    func messageContext(id: Int64, historyLimit: Int) async throws -> MessageContext?
    /// With `afterID`: oldest first, ids greater than it. Otherwise newest first, ids below `beforeID`.
    func messages(chatID: Int64, ownerID: Int64, limit: Int, beforeID: Int64?, afterID: Int64?) async throws -> [Message]
    /// Ids of user messages still `queued` that were created before `createdBefore`, oldest
    /// first: turns whose job may never have been queued (an api node died in between).
    func queuedMessageIDs(createdBefore: Date, limit: Int) async throws -> [Int64]
    /// Sets the status when the current one is in `from` (any when nil). False when nothing changed.
    func updateStatus(id: Int64, to status: MessageStatus, error: String?, from: Set<MessageStatus>?) async throws -> Bool
    /// Ends a `queued` or `running` turn as `completed` with its classification (nil keeps what
    /// is stored) and bumps its chat's `updated_at`, in one statement; false when the message
    /// had another status.
    func completeTurn(id: Int64, topic: String?, language: String?) async throws -> Bool
    /// Records that a reply reached its channel; false when it was recorded before (or the message is gone).
    func markDelivered(id: Int64) async throws -> Bool
    func updateContent(id: Int64, content: String) async throws -> Bool
    func deleteMessage(id: Int64, ownerID: Int64) async throws -> Bool
    /// Records the id the channel gave a reply it accepted (a WhatsApp wamid) and its status `sent`.
    func recordSent(id: Int64, externalID: String) async throws -> Bool
    /// Raises the delivery status of the owner's reply known to `channel` as `externalID`; a
    /// status reported late (`delivered` after `read`) changes nothing. False when nothing changed.
    func raiseDeliveryStatus(ownerID: Int64, channel: Channel, externalID: String, to status: DeliveryStatus) async throws -> Bool
}

extension MessageStore {
    /// One query per id; stores that can do better (MariaDB: one `IN` query) implement it.
    public func messages(ids: [Int64]) async throws -> [Message] {
        var found: [Message] = []
        for id in ids {
            if let message = try await message(id: id) { found.append(message) }
        }
        return found
    }
}

/// A message, how many files are attached to it, and up to a limit of the messages before it in
/// its chat (newest first): what a turn reads before it runs.
public struct MessageContext: Sendable {
    public var message: Message
    public var attachmentCount: Int
    public var earlier: [Message]

    public init(message: Message, attachmentCount: Int, earlier: [Message]) {
        self.message = message
        self.attachmentCount = attachmentCount
        self.earlier = earlier
    }
}

/// A node of a planned task graph, to store.
public struct PlannedTask: Sendable, Hashable {
    public var nodeID: String
    public var capability: String
    public var dependsOn: [String]
    /// Stored `running` (with started_at) instead of `pending`: the executor starts it at once,
    /// so its row needs no `running` update of its own.
    public var startsRunning: Bool

    public init(nodeID: String, capability: String, dependsOn: [String] = [], startsRunning: Bool = false) {
        self.nodeID = nodeID
        self.capability = capability
        self.dependsOn = dependsOn
        self.startsRunning = startsRunning
    }

    var initialState: MessageTask.State { startsRunning ? .running : .pending }
}

public protocol MessageTaskStore: Sendable {
    /// Replaces the message's task rows with `tasks`, `pending` unless they start running (a
    /// re-planned turn starts over).
    func saveTasks(messageID: Int64, tasks: [PlannedTask]) async throws -> [MessageTask]
    /// A turn's first plan, in one statement: inserts the rows (`pending` unless they start
    /// running); rows of the same nodes
    /// left by a run that never got to claim the turn start over. (`saveTasks` replaces a
    /// restarted turn's rows, whichever nodes they had.)
    func insertTasks(messageID: Int64, tasks: [PlannedTask]) async throws
    func tasks(messageID: Int64) async throws -> [MessageTask]
    /// Only when the message belongs to `ownerID`.
    func tasks(messageID: Int64, ownerID: Int64) async throws -> [MessageTask]
    /// `done`, `failed` and `skipped` set finished_at; `started` sets started_at (unless set):
    /// a node that ran and finished before its `running` row was written is one write.
    func updateTask(messageID: Int64, nodeID: String, state: MessageTask.State, output: String?, error: String?, started: Bool) async throws -> Bool
    func deleteTasks(messageID: Int64) async throws -> Int
}

extension MessageTaskStore {
    /// `running` sets started_at; `done`, `failed` and `skipped` set finished_at.
    public func updateTask(messageID: Int64, nodeID: String, state: MessageTask.State, output: String?, error: String?) async throws -> Bool {
        try await updateTask(messageID: messageID, nodeID: nodeID, state: state, output: output, error: error, started: state == .running)
    }
}

/// A file to store.
public struct NewFile: Sendable, Hashable {
    public var ownerID: Int64
    public var chatID: Int64?
    public var messageID: Int64?
    public var name: String
    public var mimeType: String
    public var size: Int64
    public var sha256: String
    public var storagePath: String
    /// The owner's (or a global) routing topic the document belongs to.
    public var topicID: Int64?

    public init(
        ownerID: Int64, chatID: Int64? = nil, messageID: Int64? = nil, name: String, mimeType: String, size: Int64,
        sha256: String, storagePath: String, topicID: Int64? = nil
    ) {
        self.topicID = topicID
        self.ownerID = ownerID
        self.chatID = chatID
        self.messageID = messageID
        self.name = name
        self.mimeType = mimeType
        self.size = size
        self.sha256 = sha256
        self.storagePath = storagePath
    }
}

public protocol FileStore: Sendable {
    func createFile(_ file: NewFile) async throws -> StoredFile
    func file(id: Int64, ownerID: Int64) async throws -> StoredFile?
    /// Unscoped: for the extract worker.
    func file(id: Int64) async throws -> StoredFile?
    /// Newest first; only the chat's files when `chatID` is given.
    func files(ownerID: Int64, chatID: Int64?, limit: Int) async throws -> [StoredFile]
    func files(messageID: Int64) async throws -> [StoredFile]
    func updateExtraction(id: Int64, status: StoredFile.ExtractStatus, text: String?, error: String?) async throws -> Bool
    func deleteFile(id: Int64, ownerID: Int64) async throws -> Bool
}

/// A chunk to store.
public struct NewChunk: Sendable, Hashable {
    public var ordinal: Int
    public var text: String
    public var embedding: [Float]

    public init(ordinal: Int, text: String, embedding: [Float]) {
        self.ordinal = ordinal
        self.text = text
        self.embedding = embedding
    }
}

/// A chunk and its cosine similarity to a query.
public struct ScoredChunk: Sendable, Hashable {
    public var chunk: Chunk
    public var score: Float

    public init(chunk: Chunk, score: Float) {
        self.chunk = chunk
        self.score = score
    }
}

public protocol ChunkStore: Sendable {
    func insertChunks(fileID: Int64, ownerID: Int64, chunks: [NewChunk]) async throws -> [Chunk]
    func chunks(fileID: Int64, ownerID: Int64) async throws -> [Chunk]
    func deleteChunks(fileID: Int64, ownerID: Int64) async throws -> Int
    /// The owner's chunks whose embedding has the query's dimension, best cosine first.
    func nearestChunks(ownerID: Int64, query: [Float], limit: Int) async throws -> [ScoredChunk]
}

public protocol WidgetStore: Sendable {
    func createWidget(ownerID: Int64, name: String, publicKey: String, allowedOrigins: [String], settings: [String: String]) async throws -> Widget
    func widget(id: Int64, ownerID: Int64) async throws -> Widget?
    /// Public lookup by the key the widget script carries.
    func widget(publicKey: String) async throws -> Widget?
    func widgets(ownerID: Int64) async throws -> [Widget]
    /// nil when not found; nil fields stay as they are.
    func updateWidget(id: Int64, ownerID: Int64, name: String?, allowedOrigins: [String]?, settings: [String: String]?) async throws -> Widget?
    func deleteWidget(id: Int64, ownerID: Int64) async throws -> Bool

    /// The visitor's session, created in mode `ai` on first use.
    func openSession(widgetID: Int64, visitorSessionID: String) async throws -> WidgetSession
    func session(widgetID: Int64, visitorSessionID: String) async throws -> WidgetSession?
    func session(id: Int64, ownerID: Int64) async throws -> WidgetSession?
    /// A widget's sessions (for its owner), optionally only those in one mode, most recently active first.
    func sessions(widgetID: Int64, ownerID: Int64, mode: WidgetSession.Mode?, limit: Int) async throws -> [WidgetSession]
    func setSessionMode(id: Int64, mode: WidgetSession.Mode) async throws -> Bool
    func setSessionChat(id: Int64, chatID: Int64?) async throws -> Bool
    func deleteSession(id: Int64, ownerID: Int64) async throws -> Bool
}

/// The Redis pub/sub channel on which an edit of topics or routing rules is announced, and its
/// payload: the owner's id, or `*` for global ones. The api publishes; every worker's rules cache
/// listens (`RoutingRulesCache`).
public enum TopicChanges {
    public static let channel = "routing:changed"

    public static func payload(ownerID: Int64?) -> String { ownerID.map(String.init) ?? "*" }

    /// The owner whose topics changed; nil for global ones (which every owner sees).
    public static func ownerID(payload: String) -> Int64? { Int64(payload) }
}

/// A user's connections to outside channels (`channel_connections`).
public protocol ChannelConnectionStore: Sendable {
    func createConnection(_ connection: NewChannelConnection) async throws -> ChannelConnection
    func connection(id: Int64, ownerID: Int64) async throws -> ChannelConnection?
    /// By the public id in a webhook URL (unscoped: the webhook is how the owner is found).
    func connection(publicID: String) async throws -> ChannelConnection?
    /// Unscoped: for workers delivering a reply on it.
    func connection(id: Int64) async throws -> ChannelConnection?
    func connections(ownerID: Int64) async throws -> [ChannelConnection]
    /// Every owner's connections of one type (unscoped: for workers that poll mailboxes).
    func connections(type: String) async throws -> [ChannelConnection]
    /// Changes what is given (nil keeps it); nil when the owner has no such connection.
    func updateConnection(id: Int64, ownerID: Int64, name: String?, settings: [String: String]?, sealedSecrets: Data?) async throws -> ChannelConnection?
    func deleteConnection(id: Int64, ownerID: Int64) async throws -> Bool
}

public protocol TopicStore: Sendable {
    /// `ownerID` nil creates a global topic.
    func createTopic(ownerID: Int64?, name: String, description: String, examples: [String]) async throws -> Topic
    /// The topic when it is the owner's own or global.
    func topic(id: Int64, visibleTo ownerID: Int64?) async throws -> Topic?
    /// Global topics and the owner's.
    func topics(visibleTo ownerID: Int64?) async throws -> [Topic]
    /// Only the owner's own topic (`ownerID` nil: a global one). nil fields stay as they are.
    func updateTopic(id: Int64, ownerID: Int64?, name: String?, description: String?, examples: [String]?) async throws -> Topic?
    func deleteTopic(id: Int64, ownerID: Int64?) async throws -> Bool

    /// nil when the topic is not the owner's (`ownerID` nil: not global).
    func createRule(topicID: Int64, ownerID: Int64?, kind: RoutingRule.Kind, pattern: String, priority: Int, enabled: Bool) async throws -> RoutingRule?
    func rules(topicID: Int64, visibleTo ownerID: Int64?) async throws -> [RoutingRule]
    /// How many rules the topics of `ownerID` (nil: the global topics) hold.
    func ruleCount(ownerID: Int64?) async throws -> Int
    /// Enabled rules of global topics and the owner's, highest priority first, with their topic's name.
    func activeRules(visibleTo ownerID: Int64?) async throws -> [(rule: RoutingRule, topic: String)]
    func updateRule(id: Int64, ownerID: Int64?, pattern: String?, priority: Int?, enabled: Bool?) async throws -> Bool
    func deleteRule(id: Int64, ownerID: Int64?) async throws -> Bool
}

/// Sums over a user's provider calls.
public struct UsageTotals: Sendable, Hashable {
    public var requests: Int
    public var promptTokens: Int
    public var completionTokens: Int

    public init(requests: Int, promptTokens: Int, completionTokens: Int) {
        self.requests = requests
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
    }
}

/// Per-user quota overrides and the message count a daily quota is checked against.
public protocol QuotaStore: Sendable {
    /// The user's own limits (nil: the configured defaults apply).
    func quota(userID: Int64) async throws -> QuotaLimits?
    func setQuota(userID: Int64, limits: QuotaLimits) async throws
    /// The user's messages (role user) stored since `since`.
    func messageCount(userID: Int64, since: Date) async throws -> Int
}

public protocol UsageStore: Sendable {
    /// Records provider calls in one statement (a turn's sorter, planner and nodes).
    func recordUsage(_ calls: [UsageCall]) async throws
    /// Newest first.
    func usage(userID: Int64, since: Date?, limit: Int) async throws -> [UsageRecord]
    func usageTotals(userID: Int64, since: Date?) async throws -> UsageTotals
    func deleteUsage(before: Date) async throws -> Int
}

/// Every store, backed by one database.
public struct Stores: Sendable {
    public var users: any UserStore
    public var apiKeys: any APIKeyStore
    public var chats: any ChatStore
    public var messages: any MessageStore
    public var tasks: any MessageTaskStore
    public var files: any FileStore
    public var chunks: any ChunkStore
    public var widgets: any WidgetStore
    public var connections: any ChannelConnectionStore
    public var topics: any TopicStore
    public var usage: any UsageStore
    public var quotas: any QuotaStore
    public var webhooks: any WebhookStore
    public var liveSupport: any LiveSupportStore
    public var credentials: any CredentialStore
    /// Uploaded files with their lifecycle, chunks and vectors (the files API and the index jobs).
    public var documents: any DocumentStore
    public var emails: any EmailStore

    /// The MariaDB implementation of every store.
    public init(database: Database) {
        users = MariaDBUserStore(database: database)
        apiKeys = MariaDBAPIKeyStore(database: database)
        chats = MariaDBChatStore(database: database)
        messages = MariaDBMessageStore(database: database)
        tasks = MariaDBMessageTaskStore(database: database)
        files = MariaDBFileStore(database: database)
        chunks = MariaDBChunkStore(database: database)
        widgets = MariaDBWidgetStore(database: database)
        connections = MariaDBChannelConnectionStore(database: database)
        topics = MariaDBTopicStore(database: database)
        usage = MariaDBUsageStore(database: database)
        quotas = MariaDBQuotaStore(database: database)
        webhooks = MariaDBWebhookStore(database: database)
        liveSupport = MariaDBLiveSupportStore(database: database)
        credentials = MariaDBCredentialStore(database: database)
        documents = MariaDBDocumentStore(database: database)
        emails = MariaDBEmailStore(database: database)
    }
}
