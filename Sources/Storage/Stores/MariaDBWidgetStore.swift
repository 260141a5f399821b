import Foundation
import SwitchboardCore

public struct MariaDBWidgetStore: WidgetStore {
    let database: Database

    public init(database: Database) { self.database = database }

    public func createWidget(
        ownerID: Int64, name: String, publicKey: String, allowedOrigins: [String], settings: [String: String]
    ) async throws -> Widget {
        let now = Date.databaseNow()
        let result = try await database.execute(
            """
            INSERT INTO widgets (user_id, public_key, name, allowed_origins, settings, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """,
            [.int(ownerID), .string(publicKey), .string(name), try jsonValue(allowedOrigins), try jsonValue(settings),
             .date(now), .date(now)])
        return Widget(
            id: result.lastInsertID, ownerID: ownerID, publicKey: publicKey, name: name, allowedOrigins: allowedOrigins,
            settings: settings, createdAt: now, updatedAt: now)
    }

    public func widget(id: Int64, ownerID: Int64) async throws -> Widget? {
        try await database.queryFirst("SELECT \(Widget.columns) FROM widgets WHERE id = ? AND user_id = ?", [.int(id), .int(ownerID)])
            .map(Widget.init(row:))
    }

    public func widget(publicKey: String) async throws -> Widget? {
        try await database.queryFirst("SELECT \(Widget.columns) FROM widgets WHERE public_key = ?", [.string(publicKey)])
            .map(Widget.init(row:))
    }

    public func widgets(ownerID: Int64) async throws -> [Widget] {
        try await database.query("SELECT \(Widget.columns) FROM widgets WHERE user_id = ? ORDER BY id", [.int(ownerID)])
            .map(Widget.init(row:))
    }

    public func updateWidget(
        id: Int64, ownerID: Int64, name: String?, allowedOrigins: [String]?, settings: [String: String]?
    ) async throws -> Widget? {
        try await database.execute(
            """
            UPDATE widgets SET name = COALESCE(?, name), allowed_origins = COALESCE(?, allowed_origins),
                settings = COALESCE(?, settings), updated_at = ?
            WHERE id = ? AND user_id = ?
            """,
            [.optional(name), try allowedOrigins.map(jsonValue) ?? .null, try settings.map(jsonValue) ?? .null,
             .date(.databaseNow()), .int(id), .int(ownerID)])
        return try await widget(id: id, ownerID: ownerID)
    }

    public func deleteWidget(id: Int64, ownerID: Int64) async throws -> Bool {
        try await database.execute("DELETE FROM widgets WHERE id = ? AND user_id = ?", [.int(id), .int(ownerID)]).affectedRows > 0
    }

    public func openSession(widgetID: Int64, visitorSessionID: String) async throws -> WidgetSession {
        let now = Date.databaseNow()
        // Concurrent first requests of one visitor converge on a single row.
        try await database.execute(
            """
            INSERT INTO widget_sessions (widget_id, visitor_session_id, mode, created_at, updated_at) VALUES (?, ?, 'ai', ?, ?)
            ON DUPLICATE KEY UPDATE updated_at = VALUES(updated_at)
            """,
            [.int(widgetID), .string(visitorSessionID), .date(now), .date(now)])
        guard let session = try await session(widgetID: widgetID, visitorSessionID: visitorSessionID) else {
            throw DatabaseError(code: .decoding, message: "widget session vanished right after it was stored")
        }
        return session
    }

    public func session(widgetID: Int64, visitorSessionID: String) async throws -> WidgetSession? {
        try await database.queryFirst(
            "SELECT \(WidgetSession.columns) FROM widget_sessions WHERE widget_id = ? AND visitor_session_id = ?",
            [.int(widgetID), .string(visitorSessionID)]
        ).map(WidgetSession.init(row:))
    }

    public func session(id: Int64, ownerID: Int64) async throws -> WidgetSession? {
        try await database.queryFirst(
            """
            SELECT \(prefixed("s", WidgetSession.columns)) FROM widget_sessions s JOIN widgets w ON w.id = s.widget_id
            WHERE s.id = ? AND w.user_id = ?
            """,
            [.int(id), .int(ownerID)]
        ).map(WidgetSession.init(row:))
    }

    public func sessions(widgetID: Int64, ownerID: Int64, mode: WidgetSession.Mode?, limit: Int) async throws -> [WidgetSession] {
        try await database.query(
            """
            SELECT \(prefixed("s", WidgetSession.columns)) FROM widget_sessions s JOIN widgets w ON w.id = s.widget_id
            WHERE s.widget_id = ? AND w.user_id = ? AND (? IS NULL OR s.mode = ?)
            ORDER BY s.updated_at DESC LIMIT ?
            """,
            [.int(widgetID), .int(ownerID), .optional(mode?.rawValue), .optional(mode?.rawValue), .int(pageSize(limit))]
        ).map(WidgetSession.init(row:))
    }

    public func setSessionMode(id: Int64, mode: WidgetSession.Mode) async throws -> Bool {
        try await database.execute(
            "UPDATE widget_sessions SET mode = ?, updated_at = ? WHERE id = ?", [.string(mode.rawValue), .date(.databaseNow()), .int(id)]
        ).affectedRows > 0
    }

    public func setSessionChat(id: Int64, chatID: Int64?) async throws -> Bool {
        try await database.execute(
            "UPDATE widget_sessions SET chat_id = ?, updated_at = ? WHERE id = ?", [.optional(chatID), .date(.databaseNow()), .int(id)]
        ).affectedRows > 0
    }

    public func deleteSession(id: Int64, ownerID: Int64) async throws -> Bool {
        try await database.execute(
            "DELETE s FROM widget_sessions s JOIN widgets w ON w.id = s.widget_id WHERE s.id = ? AND w.user_id = ?",
            [.int(id), .int(ownerID)]
        ).affectedRows > 0
    }
}
