/// The schema of the generic webhook channel (migration 6): the `webhook` channel value, what
/// each webhook request asked for (its callback and metadata), and each API key's callback
/// signing secret, sealed by the application.
extension Schema {
    static let genericWebhook: [String] = [
        "ALTER TABLE chats MODIFY COLUMN channel ENUM('web','widget','whatsapp','email','api','webhook') NOT NULL DEFAULT 'web'",
        "ALTER TABLE messages MODIFY COLUMN channel ENUM('web','widget','whatsapp','email','api','webhook') NOT NULL DEFAULT 'web'",
        """
        CREATE TABLE IF NOT EXISTS webhook_requests (
            message_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
            api_key_id BIGINT UNSIGNED NULL,
            callback_url VARCHAR(2048) NULL,
            metadata JSON NULL,
            created_at DATETIME(6) NOT NULL,
            CONSTRAINT webhook_requests_message_fk FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE,
            CONSTRAINT webhook_requests_key_fk FOREIGN KEY (api_key_id) REFERENCES api_keys (id) ON DELETE SET NULL
        ) \(table)
        """,
        """
        CREATE TABLE IF NOT EXISTS webhook_secrets (
            api_key_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
            sealed_secret BLOB NOT NULL,
            created_at DATETIME(6) NOT NULL,
            CONSTRAINT webhook_secrets_key_fk FOREIGN KEY (api_key_id) REFERENCES api_keys (id) ON DELETE CASCADE
        ) \(table)
        """,
    ]
}
