import Foundation
import SwitchboardCore

/// The passwords users sign in to the web pages with: only their bcrypt hashes, in
/// `users.password_hash` (migration 11). Hashing and checking happen in the api (`Passwords`).
public protocol CredentialStore: Sendable {
    /// The user with this email and the hash of their password (nil when none is set).
    func credentials(email: String) async throws -> (user: User, passwordHash: String?)?
    /// Sets (or with nil removes) the user's password hash; false when no such user.
    func setPasswordHash(userID: Int64, hash: String?) async throws -> Bool
}

public struct MariaDBCredentialStore: CredentialStore {
    let database: Database

    public init(database: Database) { self.database = database }

    public func credentials(email: String) async throws -> (user: User, passwordHash: String?)? {
        guard let row = try await database.queryFirst(
            "SELECT \(User.columns), password_hash FROM users WHERE email = ?", [.string(email)])
        else { return nil }
        return (try User(row: row), try row.optionalString("password_hash"))
    }

    public func setPasswordHash(userID: Int64, hash: String?) async throws -> Bool {
        let now = Date.databaseNow()
        return try await database.execute(
            "UPDATE users SET password_hash = ?, password_changed_at = ?, updated_at = ? WHERE id = ?",
            [.optional(hash), .date(now), .date(now), .int(userID)]
        ).affectedRows > 0
    }
}
