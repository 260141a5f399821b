/// The schema of the email channel (migration 10): what each mail in and out was, beside its
/// message (`email_messages`: its RFC Message-ID for threading, sender and recipient, subject,
/// References, the full body with the quoted conversation, why it was ignored, parser warnings).
/// A chat of an email thread keeps its reply token in `chats.external_thread_key`
/// (`email:{connection}:{token}`).
extension Schema {
    static let email: [String] = [
        """
        CREATE TABLE IF NOT EXISTS email_messages (
            message_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
            user_id BIGINT UNSIGNED NOT NULL,
            chat_id BIGINT UNSIGNED NOT NULL,
            connection_id BIGINT UNSIGNED NULL,
            direction ENUM('in','out') NOT NULL,
            rfc_message_id VARCHAR(255) NOT NULL,
            from_address VARCHAR(320) NOT NULL DEFAULT '',
            from_name VARCHAR(200) NULL,
            to_address VARCHAR(320) NOT NULL DEFAULT '',
            subject VARCHAR(1000) NOT NULL DEFAULT '',
            references_header TEXT NULL,
            sent_date VARCHAR(100) NULL,
            full_text MEDIUMTEXT NULL,
            ignored_reason VARCHAR(32) NULL,
            warnings TEXT NULL,
            created_at DATETIME(6) NOT NULL,
            KEY email_messages_rfc_id (user_id, rfc_message_id),
            KEY email_messages_chat (chat_id),
            CONSTRAINT email_messages_message_fk FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE,
            CONSTRAINT email_messages_connection_fk FOREIGN KEY (connection_id) REFERENCES channel_connections (id) ON DELETE SET NULL
        ) \(table)
        """
    ]
}
