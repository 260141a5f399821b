import Foundation
import SwitchboardCore

public struct MariaDBChatStore: ChatStore {
    let database: Database

    public init(database: Database) { self.database = database }

    public func createChat(ownerID: Int64, title: String, channel: Channel, externalThreadKey: String?) async throws -> Chat {
        try await Self.createChat(on: database, ownerID: ownerID, title: title, channel: channel, externalThreadKey: externalThreadKey)
    }

    static func createChat(
        on executor: any DatabaseExecutor, ownerID: Int64, title: String, channel: Channel, externalThreadKey: String?
    ) async throws -> Chat {
        let now = Date.databaseNow()
        let result = try await executor.execute(
            "INSERT INTO chats (user_id, title, channel, external_thread_key, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            [.int(ownerID), .string(title), .string(channel.rawValue), .optional(externalThreadKey), .date(now), .date(now)])
        return Chat(
            id: result.lastInsertID, ownerID: ownerID, title: title, channel: channel, externalThreadKey: externalThreadKey,
            createdAt: now, updatedAt: now)
    }

    public func chat(id: Int64, ownerID: Int64) async throws -> Chat? {
        try await database.queryFirst("SELECT \(Chat.columns) FROM chats WHERE id = ? AND user_id = ?", [.int(id), .int(ownerID)])
            .map(Chat.init(row:))
    }

    public func chat(ownerID: Int64, channel: Channel, externalThreadKey: String) async throws -> Chat? {
        try await database.queryFirst(
            """
            SELECT \(Chat.columns) FROM chats WHERE user_id = ? AND channel = ? AND external_thread_key = ?
            ORDER BY id DESC LIMIT 1
            """,
            [.int(ownerID), .string(channel.rawValue), .string(externalThreadKey)]
        ).map(Chat.init(row:))
    }

    public func chats(ownerID: Int64, limit: Int, beforeID: Int64?) async throws -> [Chat] {
        try await database.query(
            "SELECT \(Chat.columns) FROM chats WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
            [.int(ownerID), .int(beforeID ?? .max), .int(pageSize(limit))]
        ).map(Chat.init(row:))
    }

    public func renameChat(id: Int64, ownerID: Int64, title: String) async throws -> Bool {
        try await database.execute(
            "UPDATE chats SET title = ?, updated_at = ? WHERE id = ? AND user_id = ?",
            [.string(title), .date(.databaseNow()), .int(id), .int(ownerID)]
        ).affectedRows > 0
    }

    public func touchChat(id: Int64) async throws {
        try await database.execute("UPDATE chats SET updated_at = ? WHERE id = ?", [.date(.databaseNow()), .int(id)])
    }

    public func deleteChat(id: Int64, ownerID: Int64) async throws -> Bool {
        try await database.execute("DELETE FROM chats WHERE id = ? AND user_id = ?", [.int(id), .int(ownerID)]).affectedRows > 0
    }
}

public struct MariaDBMessageStore: MessageStore {
    let database: Database

    public init(database: Database) { self.database = database }

    public func insertMessage(_ message: NewMessage) async throws -> Message {
        try await Self.insert(message, on: database)
    }

    static func insert(_ message: NewMessage, on executor: any DatabaseExecutor) async throws -> Message {
        let now = Date.databaseNow()
        let result = try await executor.execute(
            """
            INSERT INTO messages (chat_id, user_id, reply_to_id, role, content, status, channel, external_id, idempotency_key,
                                  delivered_at, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [.int(message.chatID), .int(message.ownerID), .optional(message.replyToID), .string(message.role.rawValue),
             .string(message.content), .string(message.status.rawValue), .string(message.channel.rawValue),
             .optional(message.externalID), .optional(message.idempotencyKey), .optional(message.deliveredAt), .date(now), .date(now)])
        return Message(
            id: result.lastInsertID, chatID: message.chatID, ownerID: message.ownerID, replyToID: message.replyToID,
            role: message.role, content: message.content, status: message.status, channel: message.channel,
            externalID: message.externalID, idempotencyKey: message.idempotencyKey, deliveredAt: message.deliveredAt,
            createdAt: now, updatedAt: now)
    }

    public func startChat(
        title: String, externalThreadKey: String?, firstMessage message: NewMessage
    ) async throws -> (chat: Chat, message: Message) {
        try await database.transaction { tx in
            let chat = try await MariaDBChatStore.createChat(
                on: tx, ownerID: message.ownerID, title: title, channel: message.channel, externalThreadKey: externalThreadKey)
            var first = message
            first.chatID = chat.id
            return (chat, try await Self.insert(first, on: tx))
        }
    }

    public func message(id: Int64, ownerID: Int64) async throws -> Message? {
        try await database.queryFirst(
            "SELECT \(Message.columns) FROM messages WHERE id = ? AND user_id = ?", [.int(id), .int(ownerID)]
        ).map(Message.init(row:))
    }

    public func messageAndOrigin(id: Int64) async throws -> (message: Message, origin: Message?)? {
        let rows = try await database.query(
            """
            SELECT \(Message.columns) FROM messages WHERE id = ?
            UNION ALL
            SELECT \(prefixed("o", Message.columns)) FROM messages r JOIN messages o ON o.id = r.reply_to_id WHERE r.id = ?
            """,
            [.int(id), .int(id)]
        ).map(Message.init(row:))
        guard let message = rows.first(where: { $0.id == id }) else { return nil }
        return (message, rows.first { $0.id != id })
    }

    /// Built once: every turn runs it, and its column lists are long.
    static let messageContextSQL = """
        SELECT \(Message.columns), (SELECT COUNT(*) FROM files f WHERE f.message_id = messages.id) AS attachment_count
        FROM messages WHERE id = ?
        UNION ALL
        (SELECT \(prefixed("h", Message.columns)), 0 FROM messages m
         JOIN messages h ON h.chat_id = m.chat_id AND h.user_id = m.user_id AND h.id < m.id
         WHERE m.id = ? ORDER BY h.id DESC LIMIT ?)
        """

    public func messageContext(id: Int64, historyLimit: Int) async throws -> MessageContext? {
        // One statement instead of three (message, files, history): each costs the database more
        // CPU to receive and answer than its index lookups do.
        let rows = try await database.query(Self.messageContextSQL, [.int(id), .int(id), .int(max(0, historyLimit))])
        // UNION ALL does not promise its parts' order: the message is the row with its id.
        var context: MessageContext?
        var earlier: [Message] = []
        for row in rows {
            let message = try Message(row: row)
            if message.id == id {
                context = MessageContext(message: message, attachmentCount: Int(try row.int("attachment_count")), earlier: [])
            } else {
                earlier.append(message)
            }
        }
        context?.earlier = earlier.sorted { $0.id > $1.id }
        return context
    }

    public func message(id: Int64) async throws -> Message? {
        try await database.queryFirst("SELECT \(Message.columns) FROM messages WHERE id = ?", [.int(id)]).map(Message.init(row:))
    }

    public func messages(ids: [Int64]) async throws -> [Message] {
        guard !ids.isEmpty else { return [] }
        let marks = Array(repeating: "?", count: ids.count).joined(separator: ",")
        return try await database.query("SELECT \(Message.columns) FROM messages WHERE id IN (\(marks))", ids.map { .int($0) })
            .map(Message.init(row:))
    }

    public func message(ownerID: Int64, channel: Channel, externalID: String) async throws -> Message? {
        try await database.queryFirst(
            "SELECT \(Message.columns) FROM messages WHERE user_id = ? AND channel = ? AND external_id = ?",
            [.int(ownerID), .string(channel.rawValue), .string(externalID)]
        ).map(Message.init(row:))
    }

    public func recordSent(id: Int64, externalID: String) async throws -> Bool {
        try await database.execute(
            """
            UPDATE messages SET external_id = ?, delivery_status = GREATEST(COALESCE(delivery_status, 0), ?), updated_at = ?
            WHERE id = ?
            """,
            [.string(externalID), .int(Int64(DeliveryStatus.sent.rawValue)), .date(.databaseNow()), .int(id)]
        ).affectedRows > 0
    }

    public func raiseDeliveryStatus(ownerID: Int64, channel: Channel, externalID: String, to status: DeliveryStatus) async throws -> Bool {
        try await database.execute(
            """
            UPDATE messages SET delivery_status = ?, updated_at = ?
            WHERE user_id = ? AND channel = ? AND external_id = ? AND COALESCE(delivery_status, 0) < ?
            """,
            [.int(Int64(status.rawValue)), .date(.databaseNow()), .int(ownerID), .string(channel.rawValue), .string(externalID),
             .int(Int64(status.rawValue))]
        ).affectedRows > 0
    }

    public func message(ownerID: Int64, idempotencyKey: String) async throws -> Message? {
        try await database.queryFirst(
            "SELECT \(Message.columns) FROM messages WHERE user_id = ? AND idempotency_key = ? ORDER BY id DESC LIMIT 1",
            [.int(ownerID), .string(idempotencyKey)]
        ).map(Message.init(row:))
    }

    public func messages(chatID: Int64, ownerID: Int64, limit: Int, beforeID: Int64?, afterID: Int64?) async throws -> [Message] {
        let rows: [Row]
        if let afterID {
            rows = try await database.query(
                "SELECT \(Message.columns) FROM messages WHERE chat_id = ? AND user_id = ? AND id > ? ORDER BY id LIMIT ?",
                [.int(chatID), .int(ownerID), .int(afterID), .int(pageSize(limit))])
        } else {
            rows = try await database.query(
                "SELECT \(Message.columns) FROM messages WHERE chat_id = ? AND user_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
                [.int(chatID), .int(ownerID), .int(beforeID ?? .max), .int(pageSize(limit))])
        }
        return try rows.map(Message.init(row:))
    }

    public func queuedMessageIDs(createdBefore: Date, limit: Int) async throws -> [Int64] {
        try await database.query(
            "SELECT id FROM messages WHERE status = 'queued' AND role = 'user' AND created_at < ? ORDER BY created_at, id LIMIT ?",
            [.date(createdBefore), .int(max(1, limit))]
        ).map { try $0.int("id") }
    }

    public func updateStatus(id: Int64, to status: MessageStatus, error: String?, from: Set<MessageStatus>?) async throws -> Bool {
        var sql = "UPDATE messages SET status = ?, error = ?, updated_at = ? WHERE id = ?"
        var values: [DatabaseValue] = [.string(status.rawValue), .optional(error), .date(.databaseNow()), .int(id)]
        if let from {
            guard !from.isEmpty else { return false }
            sql += " AND status IN (\(Array(repeating: "?", count: from.count).joined(separator: ", ")))"
            values += from.map(\.rawValue).sorted().map { .string($0) }
        }
        return try await database.execute(sql, values).affectedRows > 0
    }

    public func completeTurn(id: Int64, topic: String?, language: String?) async throws -> Bool {
        let now = Date.databaseNow()
        return try await database.execute(
            """
            UPDATE messages m JOIN chats c ON c.id = m.chat_id
            SET m.status = 'completed', m.error = NULL, m.topic = COALESCE(?, m.topic), m.language = COALESCE(?, m.language),
                m.updated_at = ?, c.updated_at = ?
            WHERE m.id = ? AND m.status IN ('queued', 'running')
            """,
            [.optional(topic), .optional(language), .date(now), .date(now), .int(id)]
        ).affectedRows > 0
    }

    public func markDelivered(id: Int64) async throws -> Bool {
        try await database.execute(
            "UPDATE messages SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL", [.date(.databaseNow()), .int(id)]
        ).affectedRows > 0
    }

    public func updateContent(id: Int64, content: String) async throws -> Bool {
        try await database.execute(
            "UPDATE messages SET content = ?, updated_at = ? WHERE id = ?", [.string(content), .date(.databaseNow()), .int(id)]
        ).affectedRows > 0
    }

    public func deleteMessage(id: Int64, ownerID: Int64) async throws -> Bool {
        try await database.execute("DELETE FROM messages WHERE id = ? AND user_id = ?", [.int(id), .int(ownerID)]).affectedRows > 0
    }
}

public struct MariaDBMessageTaskStore: MessageTaskStore {
    let database: Database

    public init(database: Database) { self.database = database }

    public func saveTasks(messageID: Int64, tasks: [PlannedTask]) async throws -> [MessageTask] {
        try await database.transaction { tx in
            // A first plan (the common case) has no rows to replace. Skipping the DELETE then avoids
            // its gap lock, on which concurrent turns inserting their rows deadlock.
            let existing = try await tx.queryFirst("SELECT COUNT(*) AS n FROM message_tasks WHERE message_id = ?", [.int(messageID)])
            if try existing?.int("n") ?? 0 > 0 {
                try await tx.execute("DELETE FROM message_tasks WHERE message_id = ?", [.int(messageID)])
            }
            var saved: [MessageTask] = []
            let now = Date.databaseNow()
            for task in tasks {
                let result = try await tx.execute(
                    """
                    INSERT INTO message_tasks (message_id, node_id, capability, state, depends_on, started_at, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                    Self.insertValues(messageID: messageID, task: task, now: now))
                saved.append(
                    MessageTask(
                        id: result.lastInsertID, messageID: messageID, nodeID: task.nodeID, capability: task.capability,
                        state: task.initialState, dependsOn: task.dependsOn, createdAt: now, startedAt: task.startsRunning ? now : nil))
            }
            return saved
        }
    }

    public func insertTasks(messageID: Int64, tasks: [PlannedTask]) async throws {
        guard !tasks.isEmpty else { return }
        let now = Date.databaseNow()
        var values: [DatabaseValue] = []
        for task in tasks { values += try Self.insertValues(messageID: messageID, task: task, now: now) }
        _ = try await database.execute(
            """
            INSERT INTO message_tasks (message_id, node_id, capability, state, depends_on, started_at, created_at)
            VALUES \(Array(repeating: "(?, ?, ?, ?, ?, ?, ?)", count: tasks.count).joined(separator: ", "))
            ON DUPLICATE KEY UPDATE capability = VALUES(capability), state = VALUES(state), depends_on = VALUES(depends_on),
                output = NULL, error = NULL, started_at = VALUES(started_at), finished_at = NULL, created_at = VALUES(created_at)
            """,
            values)
    }

    private static func insertValues(messageID: Int64, task: PlannedTask, now: Date) throws -> [DatabaseValue] {
        [.int(messageID), .string(task.nodeID), .string(task.capability), .string(task.initialState.rawValue), try jsonValue(task.dependsOn),
         task.startsRunning ? .date(now) : .null, .date(now)]
    }

    public func tasks(messageID: Int64) async throws -> [MessageTask] {
        try await database.query("SELECT \(MessageTask.columns) FROM message_tasks WHERE message_id = ? ORDER BY id", [.int(messageID)])
            .map(MessageTask.init(row:))
    }

    public func tasks(messageID: Int64, ownerID: Int64) async throws -> [MessageTask] {
        try await database.query(
            """
            SELECT \(prefixed("t", MessageTask.columns)) FROM message_tasks t JOIN messages m ON m.id = t.message_id
            WHERE t.message_id = ? AND m.user_id = ? ORDER BY t.id
            """,
            [.int(messageID), .int(ownerID)]
        ).map(MessageTask.init(row:))
    }

    public func updateTask(
        messageID: Int64, nodeID: String, state: MessageTask.State, output: String?, error: String?, started: Bool
    ) async throws -> Bool {
        let now = Date.databaseNow()
        let finished = state == .done || state == .failed || state == .skipped
        return try await database.execute(
            """
            UPDATE message_tasks SET state = ?, output = COALESCE(?, output), error = ?,
                started_at = IF(? AND started_at IS NULL, ?, started_at),
                finished_at = IF(?, ?, finished_at)
            WHERE message_id = ? AND node_id = ?
            """,
            [.string(state.rawValue), .optional(output), .optional(error), .bool(started), .date(now),
             .bool(finished), .date(now), .int(messageID), .string(nodeID)]
        ).affectedRows > 0
    }

    public func deleteTasks(messageID: Int64) async throws -> Int {
        Int(try await database.execute("DELETE FROM message_tasks WHERE message_id = ?", [.int(messageID)]).affectedRows)
    }
}
