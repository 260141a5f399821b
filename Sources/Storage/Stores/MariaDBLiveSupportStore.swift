/// Live support's rows beside the widgets: who operates a widget, a visitor's session (secret
/// hash, mode, operator, mode version, activity) and the log of its mode changes and messages.
import Foundation
import SwitchboardCore

/// A visitor's session as live support sees it.
public struct LiveSession: Sendable, Hashable {
    public var id: Int64
    public var widgetID: Int64
    /// The public id (`ses_…`) in URLs and channel names.
    public var sessionID: String
    public var tokenHash: Data?
    public var mode: WidgetSession.Mode
    public var operatorID: Int64?
    public var operatorName: String?
    /// Raised by every mode change.
    public var modeVersion: Int64
    public var chatID: Int64?
    public var lastActivityAt: Date?
    public var lastMessage: String?
    public var lastMessageRole: String?
    public var closedAt: Date?
    public var createdAt: Date

    public var isClosed: Bool { closedAt != nil }
}

/// One entry of a session's log.
public struct LiveSessionEvent: Sendable, Hashable {
    public enum Kind: String, Sendable { case mode, message, closed }
    public var kind: Kind
    public var mode: WidgetSession.Mode
    public var modeVersion: Int64
    public var actorUserID: Int64?
    public var actorName: String?
    public var messageID: Int64?
    public var createdAt: Date
}

public protocol LiveSupportStore: Sendable {
    /// The widgets `userID` owns or operates, by id.
    func visibleWidgets(userID: Int64) async throws -> [Widget]
    /// The widget if `userID` owns or operates it.
    func visibleWidget(id: Int64, userID: Int64) async throws -> Widget?
    func addOperator(widgetID: Int64, userID: Int64) async throws
    func removeOperator(widgetID: Int64, userID: Int64) async throws -> Bool
    func operatorIDs(widgetID: Int64) async throws -> [Int64]

    func createSession(widgetID: Int64, sessionID: String, tokenHash: Data, chatID: Int64) async throws -> LiveSession
    func session(widgetID: Int64, sessionID: String) async throws -> LiveSession?
    /// The session whose conversation is `chatID`.
    func session(chatID: Int64) async throws -> LiveSession?
    /// Most recent activity first, optionally only one mode.
    func sessions(widgetID: Int64, mode: WidgetSession.Mode?, limit: Int) async throws -> [LiveSession]
    /// Changes the mode (raising its version) and logs who did it, unless the session is closed
    /// or its mode is not in `from`; nil then. Answers the session as changed.
    func setMode(
        sessionRowID: Int64, to mode: WidgetSession.Mode, operatorID: Int64?, actorUserID: Int64?, from: Set<WidgetSession.Mode>?
    ) async throws -> LiveSession?
    /// Logs a message of the session under its current mode version and records the activity.
    func recordMessage(sessionRowID: Int64, messageID: Int64, role: String, preview: String, actorUserID: Int64?) async throws
    func close(sessionRowID: Int64, actorUserID: Int64?) async throws -> LiveSession?
    /// The mode version a message was logged under.
    func modeVersion(messageID: Int64) async throws -> Int64?
    /// Who wrote each operator message among `messageIDs` (the operator's name).
    func operatorNames(messageIDs: [Int64]) async throws -> [Int64: String]
    /// A session's log, oldest first.
    func events(sessionRowID: Int64) async throws -> [LiveSessionEvent]
    /// Messages the visitor has sent in the session's conversation.
    func visitorMessageCount(chatID: Int64) async throws -> Int
}

public struct MariaDBLiveSupportStore: LiveSupportStore {
    let database: Database

    public init(database: Database) { self.database = database }

    static let widgetColumns = prefixed("w", Widget.columns)
    static let sessionColumns = """
        s.id, s.widget_id, s.visitor_session_id, s.token_hash, s.mode, s.operator_id, s.mode_version, s.chat_id, s.last_activity_at,
        s.last_message, s.last_message_role, s.closed_at, s.created_at, NULLIF(COALESCE(NULLIF(u.name, ''), u.email), '') AS operator_name
        """
    static let sessionFrom = "widget_sessions s LEFT JOIN users u ON u.id = s.operator_id"

    public func visibleWidgets(userID: Int64) async throws -> [Widget] {
        try await database.query(
            """
            SELECT \(Self.widgetColumns) FROM widgets w
            WHERE w.user_id = ? OR EXISTS (SELECT 1 FROM widget_operators o WHERE o.widget_id = w.id AND o.user_id = ?)
            ORDER BY w.id
            """, [.int(userID), .int(userID)]
        ).map(Widget.init(row:))
    }

    public func visibleWidget(id: Int64, userID: Int64) async throws -> Widget? {
        try await database.queryFirst(
            """
            SELECT \(Self.widgetColumns) FROM widgets w
            WHERE w.id = ? AND (w.user_id = ? OR EXISTS (SELECT 1 FROM widget_operators o WHERE o.widget_id = w.id AND o.user_id = ?))
            """, [.int(id), .int(userID), .int(userID)]
        ).map(Widget.init(row:))
    }

    public func addOperator(widgetID: Int64, userID: Int64) async throws {
        try await database.execute(
            "INSERT IGNORE INTO widget_operators (widget_id, user_id, created_at) VALUES (?, ?, ?)",
            [.int(widgetID), .int(userID), .date(.databaseNow())])
    }

    public func removeOperator(widgetID: Int64, userID: Int64) async throws -> Bool {
        try await database.execute("DELETE FROM widget_operators WHERE widget_id = ? AND user_id = ?", [.int(widgetID), .int(userID)])
            .affectedRows > 0
    }

    public func operatorIDs(widgetID: Int64) async throws -> [Int64] {
        try await database.query("SELECT user_id FROM widget_operators WHERE widget_id = ? ORDER BY user_id", [.int(widgetID)])
            .map { try $0.int("user_id") }
    }

    public func createSession(widgetID: Int64, sessionID: String, tokenHash: Data, chatID: Int64) async throws -> LiveSession {
        let now = Date.databaseNow()
        try await database.execute(
            """
            INSERT INTO widget_sessions (widget_id, visitor_session_id, token_hash, mode, chat_id, last_activity_at, created_at, updated_at)
            VALUES (?, ?, ?, 'ai', ?, ?, ?, ?)
            """,
            [.int(widgetID), .string(sessionID), .blob(tokenHash), .int(chatID), .date(now), .date(now), .date(now)])
        guard let session = try await session(widgetID: widgetID, sessionID: sessionID) else {
            throw DatabaseError(code: .decoding, message: "widget session vanished right after it was stored")
        }
        return session
    }

    public func session(widgetID: Int64, sessionID: String) async throws -> LiveSession? {
        try await database.queryFirst(
            "SELECT \(Self.sessionColumns) FROM \(Self.sessionFrom) WHERE s.widget_id = ? AND s.visitor_session_id = ?",
            [.int(widgetID), .string(sessionID)]
        ).map(LiveSession.init(row:))
    }

    public func session(chatID: Int64) async throws -> LiveSession? {
        try await database.queryFirst("SELECT \(Self.sessionColumns) FROM \(Self.sessionFrom) WHERE s.chat_id = ?", [.int(chatID)])
            .map(LiveSession.init(row:))
    }

    /// The session with its row locked until the transaction ends: what is read is what the
    /// transaction's writes are based on, and no other writer to the session can slip in between.
    func lockedSession(rowID: Int64, on transaction: DatabaseSession) async throws -> LiveSession? {
        guard try await transaction.queryFirst("SELECT id FROM widget_sessions WHERE id = ? FOR UPDATE", [.int(rowID)]) != nil else {
            return nil
        }
        return try await session(rowID: rowID, on: transaction)
    }

    func session(rowID: Int64, on session: some DatabaseExecutor) async throws -> LiveSession? {
        try await session.queryFirst("SELECT \(Self.sessionColumns) FROM \(Self.sessionFrom) WHERE s.id = ?", [.int(rowID)])
            .map(LiveSession.init(row:))
    }

    public func sessions(widgetID: Int64, mode: WidgetSession.Mode?, limit: Int) async throws -> [LiveSession] {
        try await database.query(
            """
            SELECT \(Self.sessionColumns) FROM \(Self.sessionFrom)
            WHERE s.widget_id = ? AND (? IS NULL OR s.mode = ?)
            ORDER BY s.last_activity_at DESC, s.id DESC LIMIT ?
            """,
            [.int(widgetID), .optional(mode?.rawValue), .optional(mode?.rawValue), .int(pageSize(limit))]
        ).map(LiveSession.init(row:))
    }

    public func setMode(
        sessionRowID: Int64, to mode: WidgetSession.Mode, operatorID: Int64?, actorUserID: Int64?, from: Set<WidgetSession.Mode>?
    ) async throws -> LiveSession? {
        try await database.transaction { transaction in
            guard let current = try await lockedSession(rowID: sessionRowID, on: transaction), !current.isClosed else { return nil }
            if let from, !from.contains(current.mode) { return nil }
            let now = Date.databaseNow()
            try await transaction.execute(
                """
                UPDATE widget_sessions SET mode = ?, operator_id = ?, mode_version = mode_version + 1, last_activity_at = ?, updated_at = ?
                WHERE id = ?
                """,
                [.string(mode.rawValue), .optional(operatorID), .date(now), .date(now), .int(sessionRowID)])
            try await transaction.execute(
                """
                INSERT INTO widget_session_events (session_id, kind, mode, mode_version, actor_user_id, created_at)
                VALUES (?, 'mode', ?, ?, ?, ?)
                """,
                [.int(sessionRowID), .string(mode.rawValue), .int(current.modeVersion + 1), .optional(actorUserID), .date(now)])
            return try await session(rowID: sessionRowID, on: transaction)
        }
    }

    public func recordMessage(sessionRowID: Int64, messageID: Int64, role: String, preview: String, actorUserID: Int64?) async throws {
        let now = Date.databaseNow()
        // One transaction (one commit). The session's row is written first, which takes its
        // exclusive lock before anything else: concurrent writers to one session queue on it
        // instead of each holding a shared lock and deadlocking on the upgrade. The version is then
        // read under that lock, so a mode change cannot slip in between.
        try await database.transaction { transaction in
            try await transaction.execute(
                "UPDATE widget_sessions SET last_activity_at = ?, last_message = ?, last_message_role = ?, updated_at = ? WHERE id = ?",
                [.date(now), .string(String(preview.prefix(500))), .string(role), .date(now), .int(sessionRowID)])
            try await transaction.execute(
                """
                INSERT INTO widget_session_events (session_id, kind, mode, mode_version, actor_user_id, message_id, created_at)
                SELECT id, 'message', mode, mode_version, ?, ?, ? FROM widget_sessions WHERE id = ?
                """,
                [.optional(actorUserID), .int(messageID), .date(now), .int(sessionRowID)])
        }
    }

    public func close(sessionRowID: Int64, actorUserID: Int64?) async throws -> LiveSession? {
        try await database.transaction { transaction in
            guard let current = try await lockedSession(rowID: sessionRowID, on: transaction) else { return nil }
            if current.isClosed { return current }
            let now = Date.databaseNow()
            try await transaction.execute(
                "UPDATE widget_sessions SET closed_at = ?, last_activity_at = ?, updated_at = ? WHERE id = ?",
                [.date(now), .date(now), .date(now), .int(sessionRowID)])
            try await transaction.execute(
                """
                INSERT INTO widget_session_events (session_id, kind, mode, mode_version, actor_user_id, created_at)
                VALUES (?, 'closed', ?, ?, ?, ?)
                """,
                [.int(sessionRowID), .string(current.mode.rawValue), .int(current.modeVersion), .optional(actorUserID), .date(now)])
            return try await session(rowID: sessionRowID, on: transaction)
        }
    }

    public func modeVersion(messageID: Int64) async throws -> Int64? {
        try await database.queryFirst(
            "SELECT mode_version FROM widget_session_events WHERE message_id = ? AND kind = 'message' ORDER BY id LIMIT 1", [.int(messageID)]
        ).map { try $0.int("mode_version") }
    }

    public func operatorNames(messageIDs: [Int64]) async throws -> [Int64: String] {
        guard !messageIDs.isEmpty else { return [:] }
        let marks = Array(repeating: "?", count: messageIDs.count).joined(separator: ",")
        let rows = try await database.query(
            """
            SELECT e.message_id, COALESCE(NULLIF(u.name, ''), u.email) AS name FROM widget_session_events e
            JOIN users u ON u.id = e.actor_user_id WHERE e.kind = 'message' AND e.message_id IN (\(marks))
            """, messageIDs.map { .int($0) })
        var names: [Int64: String] = [:]
        for row in rows { names[try row.int("message_id")] = try row.string("name") }
        return names
    }

    public func events(sessionRowID: Int64) async throws -> [LiveSessionEvent] {
        try await database.query(
            """
            SELECT e.kind, e.mode, e.mode_version, e.actor_user_id, e.message_id, e.created_at,
                NULLIF(COALESCE(NULLIF(u.name, ''), u.email), '') AS actor_name
            FROM widget_session_events e LEFT JOIN users u ON u.id = e.actor_user_id WHERE e.session_id = ? ORDER BY e.id
            """, [.int(sessionRowID)]
        ).map { row in
            LiveSessionEvent(
                kind: try row.enumValue("kind"), mode: try row.enumValue("mode"), modeVersion: try row.int("mode_version"),
                actorUserID: try row.optionalInt("actor_user_id"), actorName: try row.optionalString("actor_name"),
                messageID: try row.optionalInt("message_id"), createdAt: try row.date("created_at"))
        }
    }

    public func visitorMessageCount(chatID: Int64) async throws -> Int {
        let row = try await database.queryFirst(
            "SELECT COUNT(*) AS n FROM messages WHERE chat_id = ? AND role = 'user'", [.int(chatID)])
        return Int(try row?.int("n") ?? 0)
    }
}

extension LiveSession {
    init(row: Row) throws {
        self.init(
            id: try row.int("id"), widgetID: try row.int("widget_id"), sessionID: try row.string("visitor_session_id"),
            tokenHash: try row.optionalData("token_hash"), mode: try row.enumValue("mode"), operatorID: try row.optionalInt("operator_id"),
            operatorName: try row.optionalString("operator_name"), modeVersion: try row.int("mode_version"),
            chatID: try row.optionalInt("chat_id"), lastActivityAt: try row.optionalDate("last_activity_at"),
            lastMessage: try row.optionalString("last_message"), lastMessageRole: try row.optionalString("last_message_role"),
            closedAt: try row.optionalDate("closed_at"), createdAt: try row.date("created_at"))
    }
}
