/// What a WhatsApp connection holds: the phone number id in its settings, and its secrets (the
/// access token that sends, the app secret that signs webhooks, the verify token of Meta's
/// subscription check), opened from the sealed box only where they are used.
import Foundation
import SwitchboardCore

public struct WhatsAppConnection: Sendable, Equatable {
    public static let type = "whatsapp"

    public var id: Int64
    public var ownerID: Int64
    public var phoneNumberID: String
    public var accessToken: String
    public var appSecret: String
    public var verifyToken: String

    public init(id: Int64, ownerID: Int64, phoneNumberID: String, accessToken: String, appSecret: String, verifyToken: String) {
        self.id = id
        self.ownerID = ownerID
        self.phoneNumberID = phoneNumberID
        self.accessToken = accessToken
        self.appSecret = appSecret
        self.verifyToken = verifyToken
    }

    /// Opens a stored connection of type `whatsapp`.
    public init(_ connection: ChannelConnection, secrets box: SecretBox) throws {
        guard connection.type == Self.type else {
            throw SwitchboardError(.internalError, status: 500, "channel \(connection.id) is not a WhatsApp connection")
        }
        let secrets = try box.open(connection.sealedSecrets)
        self.init(
            id: connection.id, ownerID: connection.ownerID, phoneNumberID: connection.settings["phoneNumberId"] ?? "",
            accessToken: secrets["accessToken"] ?? "", appSecret: secrets["appSecret"] ?? "", verifyToken: secrets["verifyToken"] ?? "")
    }

    /// The chat of one WhatsApp contact on one connection: `wa:{connection id}:{wa_id}`.
    public static func threadKey(connectionID: Int64, waID: String) -> String { "wa:\(connectionID):\(waID)" }

    /// The connection id and the contact's wa_id in a thread key; nil for any other key.
    public static func parseThreadKey(_ key: String) -> (connectionID: Int64, waID: String)? {
        let parts = key.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "wa", let id = Int64(parts[1]), !parts[2].isEmpty else { return nil }
        return (id, String(parts[2]))
    }
}
