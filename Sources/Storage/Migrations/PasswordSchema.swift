/// Migration 11: a password for signing in to the web pages (`switchboard users passwd`). Only a
/// bcrypt hash is stored; NULL means the user cannot sign in with a password (API keys only).
extension Schema {
    static let userPasswords: [String] = [
        "ALTER TABLE users ADD COLUMN IF NOT EXISTS password_hash VARCHAR(100) NULL AFTER role",
        "ALTER TABLE users ADD COLUMN IF NOT EXISTS password_changed_at DATETIME(6) NULL AFTER password_hash",
    ]
}
