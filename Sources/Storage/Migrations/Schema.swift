/// The schema, as an ordered list of migrations. Ids are BIGINT UNSIGNED AUTO_INCREMENT, times are
/// DATETIME(6) in UTC (every session runs with time_zone '+00:00'), text is utf8mb4.
public enum Schema {
    static let table = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"

    public static let migrations: [Migration] = [
        Migration(version: 1, name: "initial schema", statements: initial),
        Migration(version: 2, name: "delivery state of replies", statements: deliveryState),
        Migration(version: 3, name: "queued messages by age", statements: queuedByAge),
        Migration(version: 4, name: "messages belong to their chat's owner", statements: chatOwnership),
        Migration(version: 5, name: "channel connections and outbound delivery status", statements: channelConnections),
        Migration(version: 6, name: "the generic webhook channel", statements: genericWebhook),
        Migration(version: 7, name: "per-user quotas", statements: userQuotas),
        Migration(version: 8, name: "live support sessions, operators and their log", statements: liveSupport),
        Migration(version: 9, name: "file lifecycle, chunk positions and embedding models, reply sources", statements: filesAndSearch),
        Migration(version: 10, name: "the email channel", statements: email),
        Migration(version: 11, name: "passwords for signing in to the web pages", statements: userPasswords),
        Migration(version: 13, name: "files belong to a topic", statements: fileTopics),
    ]

    /// A message's (chat_id, user_id) must be a chat and its owner: storing a message in a chat
    /// checks ownership by itself, without a read of the chat first (`PublicAPI.submit`). The
    /// (chat_id, user_id, id) index serves that key and every message listing and history read.
    static let chatOwnership: [String] = [
        "ALTER TABLE chats ADD UNIQUE KEY IF NOT EXISTS chats_id_user (id, user_id)",
        "ALTER TABLE messages ADD KEY IF NOT EXISTS messages_chat_user (chat_id, user_id, id)",
        // Added before the old key goes: a table that breaks the rule keeps its old key.
        """
        ALTER TABLE messages ADD CONSTRAINT messages_chat_owner_fk FOREIGN KEY IF NOT EXISTS (chat_id, user_id)
            REFERENCES chats (id, user_id) ON DELETE CASCADE
        """,
        "ALTER TABLE messages DROP FOREIGN KEY IF EXISTS messages_chat_fk",
        "DROP INDEX IF EXISTS messages_chat ON messages",
    ]

    /// A user's connections to outside channels (a WhatsApp number, later mailboxes): settings in
    /// clear, secrets sealed with AES-GCM by the application (never readable from the table alone).
    /// A channel's message ids are unique per owner (two tenants may receive the same email), and
    /// a reply sent to a channel records how far the peer says it got (`delivery_status`: 1 sent,
    /// 2 delivered, 3 read, 4 failed; only ever raised).
    static let channelConnections: [String] = [
        """
        CREATE TABLE IF NOT EXISTS channel_connections (
            id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            user_id BIGINT UNSIGNED NOT NULL,
            type VARCHAR(32) NOT NULL,
            name VARCHAR(200) NOT NULL,
            public_id VARCHAR(64) NOT NULL,
            settings JSON NOT NULL DEFAULT '{}',
            sealed_secrets BLOB NOT NULL,
            created_at DATETIME(6) NOT NULL,
            updated_at DATETIME(6) NOT NULL,
            UNIQUE KEY channel_connections_public_id (public_id),
            KEY channel_connections_user (user_id, id),
            CONSTRAINT channel_connections_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
        ) \(table)
        """,
        "ALTER TABLE messages ADD UNIQUE KEY IF NOT EXISTS messages_owner_channel_external (user_id, channel, external_id)",
        "ALTER TABLE messages DROP INDEX IF EXISTS messages_channel_external",
        "ALTER TABLE messages ADD KEY IF NOT EXISTS messages_channel_external_id (channel, external_id)",
        "ALTER TABLE messages ADD COLUMN IF NOT EXISTS delivery_status TINYINT UNSIGNED NULL AFTER delivered_at",
    ]

    /// For the workers' sweep of messages left `queued` (`MessageStore.queuedMessageIDs`).
    static let queuedByAge: [String] = [
        "CREATE INDEX IF NOT EXISTS messages_status_created ON messages (status, created_at)"
    ]

    /// When a reply was handed to its channel of origin (NULL until the `delivery` job ran).
    static let deliveryState: [String] = [
        "ALTER TABLE messages ADD COLUMN IF NOT EXISTS delivered_at DATETIME(6) NULL AFTER idempotency_key"
    ]

    static let initial: [String] = [
        """
        CREATE TABLE IF NOT EXISTS users (
            id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            email VARCHAR(320) NOT NULL,
            name VARCHAR(200) NOT NULL DEFAULT '',
            role ENUM('user','operator','admin') NOT NULL DEFAULT 'user',
            created_at DATETIME(6) NOT NULL,
            updated_at DATETIME(6) NOT NULL,
            UNIQUE KEY users_email (email)
        ) \(table)
        """,
        """
        CREATE TABLE IF NOT EXISTS api_keys (
            id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            user_id BIGINT UNSIGNED NOT NULL,
            name VARCHAR(200) NOT NULL DEFAULT '',
            prefix VARCHAR(32) NOT NULL,
            key_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
            created_at DATETIME(6) NOT NULL,
            last_used_at DATETIME(6) NULL,
            revoked_at DATETIME(6) NULL,
            UNIQUE KEY api_keys_hash (key_hash),
            KEY api_keys_user (user_id),
            CONSTRAINT api_keys_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
        ) \(table)
        """,
        """
        CREATE TABLE IF NOT EXISTS chats (
            id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            user_id BIGINT UNSIGNED NOT NULL,
            title VARCHAR(500) NOT NULL DEFAULT '',
            channel ENUM('web','widget','whatsapp','email','api') NOT NULL DEFAULT 'web',
            external_thread_key VARCHAR(255) NULL,
            created_at DATETIME(6) NOT NULL,
            updated_at DATETIME(6) NOT NULL,
            KEY chats_user (user_id, id),
            KEY chats_thread (user_id, channel, external_thread_key),
            CONSTRAINT chats_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
        ) \(table)
        """,
        """
        CREATE TABLE IF NOT EXISTS messages (
            id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            chat_id BIGINT UNSIGNED NOT NULL,
            user_id BIGINT UNSIGNED NOT NULL,
            reply_to_id BIGINT UNSIGNED NULL,
            role ENUM('user','assistant','system','operator') NOT NULL,
            content MEDIUMTEXT NOT NULL,
            status ENUM('queued','running','completed','failed','cancelled') NOT NULL DEFAULT 'queued',
            topic VARCHAR(100) NULL,
            language VARCHAR(16) NULL,
            error TEXT NULL,
            channel ENUM('web','widget','whatsapp','email','api') NOT NULL DEFAULT 'web',
            external_id VARCHAR(255) NULL,
            idempotency_key VARCHAR(255) NULL,
            created_at DATETIME(6) NOT NULL,
            updated_at DATETIME(6) NOT NULL,
            UNIQUE KEY messages_channel_external (channel, external_id),
            KEY messages_chat (chat_id, id),
            KEY messages_user (user_id, id),
            KEY messages_idempotency (user_id, idempotency_key),
            KEY messages_reply_to (reply_to_id),
            CONSTRAINT messages_chat_fk FOREIGN KEY (chat_id) REFERENCES chats (id) ON DELETE CASCADE,
            CONSTRAINT messages_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
            CONSTRAINT messages_reply_to_fk FOREIGN KEY (reply_to_id) REFERENCES messages (id) ON DELETE SET NULL
        ) \(table)
        """,
        """
        CREATE TABLE IF NOT EXISTS message_tasks (
            id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            message_id BIGINT UNSIGNED NOT NULL,
            node_id VARCHAR(64) NOT NULL,
            capability VARCHAR(64) NOT NULL,
            state ENUM('pending','running','done','failed','skipped') NOT NULL DEFAULT 'pending',
            depends_on JSON NOT NULL DEFAULT '[]',
            output MEDIUMTEXT NULL,
            error TEXT NULL,
            created_at DATETIME(6) NOT NULL,
            started_at DATETIME(6) NULL,
            finished_at DATETIME(6) NULL,
            UNIQUE KEY message_tasks_node (message_id, node_id),
            CONSTRAINT message_tasks_message_fk FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE
        ) \(table)
        """,
        """
        CREATE TABLE IF NOT EXISTS files (
            id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            user_id BIGINT UNSIGNED NOT NULL,
            chat_id BIGINT UNSIGNED NULL,
            message_id BIGINT UNSIGNED NULL,
            name VARCHAR(255) NOT NULL,
            mime_type VARCHAR(255) NOT NULL,
            size_bytes BIGINT UNSIGNED NOT NULL,
            sha256 CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
            storage_path VARCHAR(1024) NOT NULL,
            extracted_text LONGTEXT NULL,
            extract_status ENUM('pending','running','done','failed') NOT NULL DEFAULT 'pending',
            extract_error TEXT NULL,
            created_at DATETIME(6) NOT NULL,
            updated_at DATETIME(6) NOT NULL,
            KEY files_user (user_id, id),
            KEY files_chat (chat_id),
            KEY files_message (message_id),
            KEY files_sha256 (sha256),
            CONSTRAINT files_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
            CONSTRAINT files_chat_fk FOREIGN KEY (chat_id) REFERENCES chats (id) ON DELETE CASCADE,
            CONSTRAINT files_message_fk FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE SET NULL
        ) \(table)
        """,
        """
        CREATE TABLE IF NOT EXISTS chunks (
            id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            file_id BIGINT UNSIGNED NOT NULL,
            user_id BIGINT UNSIGNED NOT NULL,
            ordinal INT UNSIGNED NOT NULL,
            text MEDIUMTEXT NOT NULL,
            embedding MEDIUMBLOB NULL,
            dim SMALLINT UNSIGNED NOT NULL DEFAULT 0,
            created_at DATETIME(6) NOT NULL,
            UNIQUE KEY chunks_file_ordinal (file_id, ordinal),
            KEY chunks_user_dim (user_id, dim),
            CONSTRAINT chunks_file_fk FOREIGN KEY (file_id) REFERENCES files (id) ON DELETE CASCADE,
            CONSTRAINT chunks_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
        ) \(table)
        """,
        """
        CREATE TABLE IF NOT EXISTS widgets (
            id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            user_id BIGINT UNSIGNED NOT NULL,
            public_key VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
            name VARCHAR(200) NOT NULL DEFAULT '',
            allowed_origins JSON NOT NULL DEFAULT '[]',
            settings JSON NOT NULL DEFAULT '{}',
            created_at DATETIME(6) NOT NULL,
            updated_at DATETIME(6) NOT NULL,
            UNIQUE KEY widgets_public_key (public_key),
            KEY widgets_user (user_id),
            CONSTRAINT widgets_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
        ) \(table)
        """,
        """
        CREATE TABLE IF NOT EXISTS widget_sessions (
            id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            widget_id BIGINT UNSIGNED NOT NULL,
            visitor_session_id VARCHAR(128) NOT NULL,
            mode ENUM('ai','waiting','human') NOT NULL DEFAULT 'ai',
            chat_id BIGINT UNSIGNED NULL,
            created_at DATETIME(6) NOT NULL,
            updated_at DATETIME(6) NOT NULL,
            UNIQUE KEY widget_sessions_visitor (widget_id, visitor_session_id),
            KEY widget_sessions_chat (chat_id),
            CONSTRAINT widget_sessions_widget_fk FOREIGN KEY (widget_id) REFERENCES widgets (id) ON DELETE CASCADE,
            CONSTRAINT widget_sessions_chat_fk FOREIGN KEY (chat_id) REFERENCES chats (id) ON DELETE SET NULL
        ) \(table)
        """,
        """
        CREATE TABLE IF NOT EXISTS topics (
            id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            user_id BIGINT UNSIGNED NULL,
            name VARCHAR(100) NOT NULL,
            description TEXT NOT NULL,
            examples JSON NOT NULL DEFAULT '[]',
            created_at DATETIME(6) NOT NULL,
            updated_at DATETIME(6) NOT NULL,
            UNIQUE KEY topics_owner_name (user_id, name),
            CONSTRAINT topics_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
        ) \(table)
        """,
        """
        CREATE TABLE IF NOT EXISTS routing_rules (
            id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            topic_id BIGINT UNSIGNED NOT NULL,
            kind ENUM('keyword','regex') NOT NULL,
            pattern VARCHAR(1000) NOT NULL,
            priority INT NOT NULL DEFAULT 0,
            enabled TINYINT(1) NOT NULL DEFAULT 1,
            created_at DATETIME(6) NOT NULL,
            updated_at DATETIME(6) NOT NULL,
            KEY routing_rules_topic (topic_id, priority),
            CONSTRAINT routing_rules_topic_fk FOREIGN KEY (topic_id) REFERENCES topics (id) ON DELETE CASCADE
        ) \(table)
        """,
        """
        CREATE TABLE IF NOT EXISTS `usage` (
            id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            user_id BIGINT UNSIGNED NOT NULL,
            message_id BIGINT UNSIGNED NULL,
            provider VARCHAR(64) NOT NULL,
            model VARCHAR(200) NOT NULL,
            prompt_tokens INT UNSIGNED NOT NULL DEFAULT 0,
            completion_tokens INT UNSIGNED NOT NULL DEFAULT 0,
            latency_ms INT UNSIGNED NOT NULL DEFAULT 0,
            created_at DATETIME(6) NOT NULL,
            KEY usage_user_time (user_id, created_at),
            KEY usage_message (message_id),
            CONSTRAINT usage_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
            CONSTRAINT usage_message_fk FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE SET NULL
        ) \(table)
        """,
    ]
}
