/// `channel_connections` in MariaDB: a user's connections to outside channels, every read and
/// write scoped to the owner except the two lookups a webhook and a worker need.
import Foundation
import SwitchboardCore

public struct MariaDBChannelConnectionStore: ChannelConnectionStore {
    let database: Database

    public init(database: Database) { self.database = database }

    public func createConnection(_ connection: NewChannelConnection) async throws -> ChannelConnection {
        let now = Date.databaseNow()
        let result = try await database.execute(
            """
            INSERT INTO channel_connections (user_id, type, name, public_id, settings, sealed_secrets, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [.int(connection.ownerID), .string(connection.type), .string(connection.name), .string(connection.publicID),
             try jsonValue(connection.settings), .blob(connection.sealedSecrets), .date(now), .date(now)])
        return ChannelConnection(
            id: result.lastInsertID, ownerID: connection.ownerID, type: connection.type, name: connection.name,
            publicID: connection.publicID, settings: connection.settings, sealedSecrets: connection.sealedSecrets, createdAt: now,
            updatedAt: now)
    }

    public func connection(id: Int64, ownerID: Int64) async throws -> ChannelConnection? {
        try await database.queryFirst(
            "SELECT \(ChannelConnection.columns) FROM channel_connections WHERE id = ? AND user_id = ?", [.int(id), .int(ownerID)]
        ).map(ChannelConnection.init(row:))
    }

    public func connection(publicID: String) async throws -> ChannelConnection? {
        try await database.queryFirst(
            "SELECT \(ChannelConnection.columns) FROM channel_connections WHERE public_id = ?", [.string(publicID)]
        ).map(ChannelConnection.init(row:))
    }

    public func connection(id: Int64) async throws -> ChannelConnection? {
        try await database.queryFirst("SELECT \(ChannelConnection.columns) FROM channel_connections WHERE id = ?", [.int(id)])
            .map(ChannelConnection.init(row:))
    }

    public func connections(ownerID: Int64) async throws -> [ChannelConnection] {
        try await database.query(
            "SELECT \(ChannelConnection.columns) FROM channel_connections WHERE user_id = ? ORDER BY id", [.int(ownerID)]
        ).map(ChannelConnection.init(row:))
    }

    public func connections(type: String) async throws -> [ChannelConnection] {
        try await database.query(
            "SELECT \(ChannelConnection.columns) FROM channel_connections WHERE type = ? ORDER BY id", [.string(type)]
        ).map(ChannelConnection.init(row:))
    }

    public func updateConnection(
        id: Int64, ownerID: Int64, name: String?, settings: [String: String]?, sealedSecrets: Data?
    ) async throws -> ChannelConnection? {
        try await database.execute(
            """
            UPDATE channel_connections SET name = COALESCE(?, name), settings = COALESCE(?, settings),
                sealed_secrets = COALESCE(?, sealed_secrets), updated_at = ?
            WHERE id = ? AND user_id = ?
            """,
            [.optional(name), try settings.map(jsonValue) ?? .null, sealedSecrets.map { .blob($0) } ?? .null, .date(.databaseNow()),
             .int(id), .int(ownerID)])
        return try await connection(id: id, ownerID: ownerID)
    }

    public func deleteConnection(id: Int64, ownerID: Int64) async throws -> Bool {
        try await database.execute("DELETE FROM channel_connections WHERE id = ? AND user_id = ?", [.int(id), .int(ownerID)])
            .affectedRows > 0
    }
}
