import Foundation
import SwitchboardCore

public struct MariaDBUserStore: UserStore {
    let database: Database

    public init(database: Database) { self.database = database }

    public func createUser(email: String, name: String, role: User.Role) async throws -> User {
        let now = Date.databaseNow()
        let result = try await database.execute(
            "INSERT INTO users (email, name, role, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
            [.string(email), .string(name), .string(role.rawValue), .date(now), .date(now)])
        return User(id: result.lastInsertID, email: email, name: name, role: role, createdAt: now, updatedAt: now)
    }

    public func user(id: Int64) async throws -> User? {
        try await database.queryFirst("SELECT \(User.columns) FROM users WHERE id = ?", [.int(id)]).map(User.init(row:))
    }

    public func user(email: String) async throws -> User? {
        try await database.queryFirst("SELECT \(User.columns) FROM users WHERE email = ?", [.string(email)]).map(User.init(row:))
    }

    public func users(limit: Int, afterID: Int64?) async throws -> [User] {
        try await database.query(
            "SELECT \(User.columns) FROM users WHERE id > ? ORDER BY id LIMIT ?", [.int(afterID ?? 0), .int(pageSize(limit))]
        ).map(User.init(row:))
    }

    public func updateUser(id: Int64, name: String?, role: User.Role?) async throws -> User? {
        try await database.execute(
            "UPDATE users SET name = COALESCE(?, name), role = COALESCE(?, role), updated_at = ? WHERE id = ?",
            [.optional(name), .optional(role?.rawValue), .date(.databaseNow()), .int(id)])
        return try await user(id: id)
    }

    public func deleteUser(id: Int64) async throws -> Bool {
        try await database.execute("DELETE FROM users WHERE id = ?", [.int(id)]).affectedRows > 0
    }
}

public struct MariaDBAPIKeyStore: APIKeyStore {
    let database: Database

    public init(database: Database) { self.database = database }

    public func createAPIKey(userID: Int64, name: String, prefix: String, keyHash: String) async throws -> APIKey {
        let now = Date.databaseNow()
        let result = try await database.execute(
            "INSERT INTO api_keys (user_id, name, prefix, key_hash, created_at) VALUES (?, ?, ?, ?, ?)",
            [.int(userID), .string(name), .string(prefix), .string(keyHash), .date(now)])
        return APIKey(id: result.lastInsertID, userID: userID, name: name, prefix: prefix, keyHash: keyHash, createdAt: now)
    }

    public func activeAPIKey(hash: String) async throws -> (key: APIKey, user: User)? {
        let sql = """
            SELECT \(prefixed("k", APIKey.columns)), u.email, u.name AS user_name, u.role, u.created_at AS user_created_at,
                   u.updated_at AS user_updated_at
            FROM api_keys k JOIN users u ON u.id = k.user_id
            WHERE k.key_hash = ? AND k.revoked_at IS NULL
            """
        guard let row = try await database.queryFirst(sql, [.string(hash)]) else { return nil }
        let key = try APIKey(row: row)
        let user = User(
            id: key.userID, email: try row.string("email"), name: try row.string("user_name"), role: try row.enumValue("role"),
            createdAt: try row.date("user_created_at"), updatedAt: try row.date("user_updated_at"))
        return (key, user)
    }

    public func apiKey(id: Int64, ownerID: Int64) async throws -> APIKey? {
        try await database.queryFirst(
            "SELECT \(APIKey.columns) FROM api_keys WHERE id = ? AND user_id = ?", [.int(id), .int(ownerID)]
        ).map(APIKey.init(row:))
    }

    public func apiKeys(ownerID: Int64) async throws -> [APIKey] {
        try await database.query("SELECT \(APIKey.columns) FROM api_keys WHERE user_id = ? ORDER BY id", [.int(ownerID)])
            .map(APIKey.init(row:))
    }

    public func touchAPIKey(id: Int64, at date: Date) async throws {
        try await database.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", [.date(date), .int(id)])
    }

    public func revokeAPIKey(id: Int64, ownerID: Int64?) async throws -> Bool {
        try await database.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND (? IS NULL OR user_id = ?) AND revoked_at IS NULL",
            [.date(.databaseNow()), .int(id), .optional(ownerID), .optional(ownerID)]
        ).affectedRows > 0
    }

    public func deleteAPIKey(id: Int64, ownerID: Int64) async throws -> Bool {
        try await database.execute("DELETE FROM api_keys WHERE id = ? AND user_id = ?", [.int(id), .int(ownerID)]).affectedRows > 0
    }
}

public struct MariaDBUsageStore: UsageStore {
    let database: Database

    public init(database: Database) { self.database = database }

    public func recordUsage(_ calls: [UsageCall]) async throws {
        guard !calls.isEmpty else { return }
        let now = Date.databaseNow()
        let rows = Array(repeating: "(?, ?, ?, ?, ?, ?, ?, ?)", count: calls.count).joined(separator: ", ")
        _ = try await database.execute(
            "INSERT INTO `usage` (user_id, message_id, provider, model, prompt_tokens, completion_tokens, latency_ms, created_at) VALUES \(rows)",
            calls.flatMap { call -> [DatabaseValue] in
                [.int(call.userID), .optional(call.messageID), .string(call.provider), .string(call.model), .int(call.promptTokens),
                 .int(call.completionTokens), .int(call.latencyMs), .date(now)]
            })
    }

    public func usage(userID: Int64, since: Date?, limit: Int) async throws -> [UsageRecord] {
        try await database.query(
            "SELECT \(UsageRecord.columns) FROM `usage` WHERE user_id = ? AND created_at >= ? ORDER BY id DESC LIMIT ?",
            [.int(userID), .date(since ?? .distantPast), .int(pageSize(limit))]
        ).map(UsageRecord.init(row:))
    }

    public func usageTotals(userID: Int64, since: Date?) async throws -> UsageTotals {
        let row = try await database.queryFirst(
            """
            SELECT COUNT(*) AS requests, COALESCE(SUM(prompt_tokens), 0) AS prompt, COALESCE(SUM(completion_tokens), 0) AS completion
            FROM `usage` WHERE user_id = ? AND created_at >= ?
            """,
            [.int(userID), .date(since ?? .distantPast)])
        guard let row else { return UsageTotals(requests: 0, promptTokens: 0, completionTokens: 0) }
        return UsageTotals(
            requests: Int(try row.int("requests")), promptTokens: Int(try row.int("prompt")),
            completionTokens: Int(try row.int("completion")))
    }

    public func deleteUsage(before: Date) async throws -> Int {
        Int(try await database.execute("DELETE FROM `usage` WHERE created_at < ?", [.date(before)]).affectedRows)
    }
}
