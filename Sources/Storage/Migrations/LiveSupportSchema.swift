/// Migration 8: live support. A widget's operators (users other than its owner who answer its
/// visitors); a session's secret (only its SHA-256), mode, operator, version of the mode (raised
/// by every change, so a reply to a message asked under another mode is never delivered),
/// activity and close time; and the log of every mode change and message of a session (who and
/// when), so a transcript is complete after a restart.
extension Schema {
    static let liveSupport: [String] = [
        """
        CREATE TABLE IF NOT EXISTS widget_operators (
            widget_id BIGINT UNSIGNED NOT NULL,
            user_id BIGINT UNSIGNED NOT NULL,
            created_at DATETIME(6) NOT NULL,
            PRIMARY KEY (widget_id, user_id),
            KEY widget_operators_user (user_id),
            CONSTRAINT widget_operators_widget_fk FOREIGN KEY (widget_id) REFERENCES widgets (id) ON DELETE CASCADE,
            CONSTRAINT widget_operators_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
        ) \(table)
        """,
        "ALTER TABLE widget_sessions ADD COLUMN IF NOT EXISTS token_hash BINARY(32) NULL AFTER visitor_session_id",
        "ALTER TABLE widget_sessions ADD COLUMN IF NOT EXISTS operator_id BIGINT UNSIGNED NULL AFTER mode",
        "ALTER TABLE widget_sessions ADD COLUMN IF NOT EXISTS mode_version INT UNSIGNED NOT NULL DEFAULT 0 AFTER operator_id",
        "ALTER TABLE widget_sessions ADD COLUMN IF NOT EXISTS last_activity_at DATETIME(6) NULL AFTER chat_id",
        "ALTER TABLE widget_sessions ADD COLUMN IF NOT EXISTS last_message VARCHAR(500) NULL AFTER last_activity_at",
        "ALTER TABLE widget_sessions ADD COLUMN IF NOT EXISTS last_message_role VARCHAR(16) NULL AFTER last_message",
        "ALTER TABLE widget_sessions ADD COLUMN IF NOT EXISTS closed_at DATETIME(6) NULL AFTER last_message_role",
        "ALTER TABLE widget_sessions ADD KEY IF NOT EXISTS widget_sessions_activity (widget_id, last_activity_at)",
        """
        CREATE TABLE IF NOT EXISTS widget_session_events (
            id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            session_id BIGINT UNSIGNED NOT NULL,
            kind ENUM('mode','message','closed') NOT NULL,
            mode ENUM('ai','waiting','human') NOT NULL,
            mode_version INT UNSIGNED NOT NULL,
            actor_user_id BIGINT UNSIGNED NULL,
            message_id BIGINT UNSIGNED NULL,
            created_at DATETIME(6) NOT NULL,
            KEY widget_session_events_session (session_id, id),
            KEY widget_session_events_message (message_id),
            CONSTRAINT widget_session_events_session_fk FOREIGN KEY (session_id) REFERENCES widget_sessions (id) ON DELETE CASCADE,
            CONSTRAINT widget_session_events_actor_fk FOREIGN KEY (actor_user_id) REFERENCES users (id) ON DELETE SET NULL
        ) \(table)
        """,
    ]
}
