/// Migration 7: per-user quota overrides (`switchboard users quota`), and the index the daily
/// message count reads.
extension Schema {
    static let userQuotas: [String] = [
        """
        CREATE TABLE IF NOT EXISTS user_quotas (
            user_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
            messages_per_day INT UNSIGNED NULL,
            tokens_per_month BIGINT UNSIGNED NULL,
            updated_at DATETIME(6) NOT NULL,
            CONSTRAINT user_quotas_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
        ) \(table)
        """,
        "CREATE INDEX IF NOT EXISTS messages_user_created ON messages (user_id, created_at)",
    ]
}
