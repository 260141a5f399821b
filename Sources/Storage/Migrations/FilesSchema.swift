/// Migration 9: uploaded files and their search index. A file's lifecycle (`status`: queued →
/// extracting → indexing → indexed, or failed with `status_error`) and its chunk count; each
/// chunk's position in its document (page or section, for citations), the embedding model that
/// made its vector and the vector's norm. Vectors of two models are never compared: searches
/// filter on (user_id, model, dim). A reply's sources (the chunks a `rag_query` node retrieved).
extension Schema {
    static let filesAndSearch: [String] = [
        """
        ALTER TABLE files ADD COLUMN IF NOT EXISTS status ENUM('queued','extracting','indexing','indexed','failed') \
        NOT NULL DEFAULT 'queued' AFTER extract_error
        """,
        "ALTER TABLE files ADD COLUMN IF NOT EXISTS status_error TEXT NULL AFTER status",
        "ALTER TABLE files ADD COLUMN IF NOT EXISTS chunk_count INT UNSIGNED NOT NULL DEFAULT 0 AFTER status_error",
        "ALTER TABLE files ADD COLUMN IF NOT EXISTS embed_model VARCHAR(200) NULL AFTER chunk_count",
        "ALTER TABLE chunks ADD COLUMN IF NOT EXISTS position VARCHAR(200) NOT NULL DEFAULT '' AFTER text",
        "ALTER TABLE chunks ADD COLUMN IF NOT EXISTS model VARCHAR(200) NOT NULL DEFAULT '' AFTER dim",
        "ALTER TABLE chunks ADD COLUMN IF NOT EXISTS norm FLOAT NOT NULL DEFAULT 0 AFTER model",
        "CREATE INDEX IF NOT EXISTS chunks_user_model ON chunks (user_id, model, dim)",
        """
        CREATE TABLE IF NOT EXISTS message_sources (
            message_id BIGINT UNSIGNED NOT NULL,
            ordinal SMALLINT UNSIGNED NOT NULL,
            file_id BIGINT UNSIGNED NULL,
            file_name VARCHAR(255) NOT NULL,
            position VARCHAR(200) NOT NULL DEFAULT '',
            score FLOAT NOT NULL,
            PRIMARY KEY (message_id, ordinal),
            CONSTRAINT message_sources_message_fk FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE,
            CONSTRAINT message_sources_file_fk FOREIGN KEY (file_id) REFERENCES files (id) ON DELETE SET NULL
        ) \(table)
        """,
    ]
}
