/// `user_quotas` in MariaDB, and the counts a quota is checked against: a user's messages since a
/// time (each stored message once, however often its turn runs) and the provider tokens recorded
/// for them since a time.
import Foundation
import SwitchboardCore

public struct MariaDBQuotaStore: QuotaStore {
    let database: Database

    public init(database: Database) { self.database = database }

    public func quota(userID: Int64) async throws -> QuotaLimits? {
        guard let row = try await database.queryFirst(
            "SELECT messages_per_day, tokens_per_month FROM user_quotas WHERE user_id = ?", [.int(userID)])
        else { return nil }
        return QuotaLimits(
            messagesPerDay: try row.optionalInt("messages_per_day").map(Int.init),
            tokensPerMonth: try row.optionalInt("tokens_per_month").map(Int.init))
    }

    public func setQuota(userID: Int64, limits: QuotaLimits) async throws {
        try await database.execute(
            """
            INSERT INTO user_quotas (user_id, messages_per_day, tokens_per_month, updated_at) VALUES (?, ?, ?, ?)
            ON DUPLICATE KEY UPDATE messages_per_day = VALUES(messages_per_day), tokens_per_month = VALUES(tokens_per_month),
                updated_at = VALUES(updated_at)
            """,
            [.int(userID), .optional(limits.messagesPerDay.map(Int64.init)), .optional(limits.tokensPerMonth.map(Int64.init)),
             .date(.databaseNow())])
    }

    public func messageCount(userID: Int64, since: Date) async throws -> Int {
        let row = try await database.queryFirst(
            "SELECT COUNT(*) AS n FROM messages WHERE user_id = ? AND created_at >= ? AND role = 'user'", [.int(userID), .date(since)])
        return Int(try row?.int("n") ?? 0)
    }
}
