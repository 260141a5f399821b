/// Migration 13: a file may belong to one of its owner's routing topics (`files.topic_id`, NULL:
/// no topic). Searches for a turn of that topic look in the topic's documents first; a deleted
/// topic leaves its files without one.
extension Schema {
    static let fileTopics: [String] = [
        "ALTER TABLE files ADD COLUMN IF NOT EXISTS topic_id BIGINT UNSIGNED NULL AFTER embed_model",
        """
        ALTER TABLE files ADD CONSTRAINT files_topic_fk FOREIGN KEY IF NOT EXISTS (topic_id)
            REFERENCES topics (id) ON DELETE SET NULL
        """,
        "CREATE INDEX IF NOT EXISTS files_user_topic ON files (user_id, topic_id)",
    ]
}
