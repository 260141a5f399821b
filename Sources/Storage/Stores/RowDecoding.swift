import Foundation
import SwitchboardCore

// Column lists and row → record decoding, one place per table.

extension User {
    static let columns = "id, email, name, role, created_at, updated_at"

    init(row: Row) throws {
        self.init(
            id: try row.int("id"), email: try row.string("email"), name: try row.string("name"),
            role: try row.enumValue("role"), createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"))
    }
}

extension APIKey {
    static let columns = "id, user_id, name, prefix, key_hash, created_at, last_used_at, revoked_at"

    init(row: Row) throws {
        self.init(
            id: try row.int("id"), userID: try row.int("user_id"), name: try row.string("name"),
            prefix: try row.string("prefix"), keyHash: try row.string("key_hash"), createdAt: try row.date("created_at"),
            lastUsedAt: try row.optionalDate("last_used_at"), revokedAt: try row.optionalDate("revoked_at"))
    }
}

extension Chat {
    static let columns = "id, user_id, title, channel, external_thread_key, created_at, updated_at"

    init(row: Row) throws {
        self.init(
            id: try row.int("id"), ownerID: try row.int("user_id"), title: try row.string("title"),
            channel: try row.enumValue("channel"), externalThreadKey: try row.optionalString("external_thread_key"),
            createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"))
    }
}

extension Message {
    static let columns = """
        id, chat_id, user_id, reply_to_id, role, content, status, topic, language, error, channel, external_id, \
        idempotency_key, delivered_at, delivery_status, created_at, updated_at
        """

    init(row: Row) throws {
        self.init(
            id: try row.int("id"), chatID: try row.int("chat_id"), ownerID: try row.int("user_id"),
            replyToID: try row.optionalInt("reply_to_id"), role: try row.enumValue("role"), content: try row.string("content"),
            status: try row.enumValue("status"), topic: try row.optionalString("topic"),
            language: try row.optionalString("language"), error: try row.optionalString("error"),
            channel: try row.enumValue("channel"), externalID: try row.optionalString("external_id"),
            idempotencyKey: try row.optionalString("idempotency_key"), deliveredAt: try row.optionalDate("delivered_at"),
            deliveryStatus: try row.optionalInt("delivery_status").flatMap { DeliveryStatus(rawValue: Int($0)) },
            createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"))
    }
}

extension ChannelConnection {
    static let columns = "id, user_id, type, name, public_id, settings, sealed_secrets, created_at, updated_at"

    init(row: Row) throws {
        self.init(
            id: try row.int("id"), ownerID: try row.int("user_id"), type: try row.string("type"), name: try row.string("name"),
            publicID: try row.string("public_id"), settings: try row.json("settings"), sealedSecrets: try row.data("sealed_secrets"),
            createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"))
    }
}

extension MessageTask {
    static let columns = """
        id, message_id, node_id, capability, state, depends_on, output, error, created_at, started_at, finished_at
        """

    init(row: Row) throws {
        self.init(
            id: try row.int("id"), messageID: try row.int("message_id"), nodeID: try row.string("node_id"),
            capability: try row.string("capability"), state: try row.enumValue("state"),
            dependsOn: try row.json("depends_on"), output: try row.optionalString("output"),
            error: try row.optionalString("error"), createdAt: try row.date("created_at"),
            startedAt: try row.optionalDate("started_at"), finishedAt: try row.optionalDate("finished_at"))
    }
}

extension StoredFile {
    static let columns = """
        id, user_id, chat_id, message_id, name, mime_type, size_bytes, sha256, storage_path, extracted_text, \
        extract_status, extract_error, created_at, updated_at
        """

    init(row: Row) throws {
        self.init(
            id: try row.int("id"), ownerID: try row.int("user_id"), chatID: try row.optionalInt("chat_id"),
            messageID: try row.optionalInt("message_id"), name: try row.string("name"),
            mimeType: try row.string("mime_type"), size: try row.int("size_bytes"), sha256: try row.string("sha256"),
            storagePath: try row.string("storage_path"), extractedText: try row.optionalString("extracted_text"),
            extractStatus: try row.enumValue("extract_status"), extractError: try row.optionalString("extract_error"),
            createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"))
    }
}

extension Chunk {
    static let columns = "id, file_id, user_id, ordinal, text, embedding, dim, created_at"

    init(row: Row) throws {
        let dimension = Int(try row.int("dim"))
        let embedding = try row.optionalData("embedding").map { (data) throws(DatabaseError) in
            try VectorCoding.decode(data, dimension: dimension)
        }
        self.init(
            id: try row.int("id"), fileID: try row.int("file_id"), ownerID: try row.int("user_id"),
            ordinal: Int(try row.int("ordinal")), text: try row.string("text"), embedding: embedding ?? [],
            createdAt: try row.date("created_at"))
    }
}

extension Widget {
    static let columns = "id, user_id, public_key, name, allowed_origins, settings, created_at, updated_at"

    init(row: Row) throws {
        self.init(
            id: try row.int("id"), ownerID: try row.int("user_id"), publicKey: try row.string("public_key"),
            name: try row.string("name"), allowedOrigins: try row.json("allowed_origins"),
            settings: try row.json("settings"), createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at"))
    }
}

extension WidgetSession {
    static let columns = "id, widget_id, visitor_session_id, mode, chat_id, created_at, updated_at"

    init(row: Row) throws {
        self.init(
            id: try row.int("id"), widgetID: try row.int("widget_id"),
            visitorSessionID: try row.string("visitor_session_id"), mode: try row.enumValue("mode"),
            chatID: try row.optionalInt("chat_id"), createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at"))
    }
}

extension Topic {
    static let columns = "id, user_id, name, description, examples, created_at, updated_at"

    init(row: Row) throws {
        self.init(
            id: try row.int("id"), ownerID: try row.optionalInt("user_id"), name: try row.string("name"),
            description: try row.string("description"), examples: try row.json("examples"),
            createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"))
    }
}

extension RoutingRule {
    static let columns = "id, topic_id, kind, pattern, priority, enabled, created_at, updated_at"

    init(row: Row) throws {
        self.init(
            id: try row.int("id"), topicID: try row.int("topic_id"), kind: try row.enumValue("kind"),
            pattern: try row.string("pattern"), priority: Int(try row.int("priority")), enabled: try row.bool("enabled"),
            createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"))
    }
}

extension UsageRecord {
    static let columns = "id, user_id, message_id, provider, model, prompt_tokens, completion_tokens, latency_ms, created_at"

    init(row: Row) throws {
        self.init(
            id: try row.int("id"),
            call: UsageCall(
                userID: try row.int("user_id"), messageID: try row.optionalInt("message_id"), provider: try row.string("provider"),
                model: try row.string("model"), promptTokens: Int(try row.int("prompt_tokens")),
                completionTokens: Int(try row.int("completion_tokens")), latencyMs: Int(try row.int("latency_ms"))),
            createdAt: try row.date("created_at"))
    }
}

/// Column list with a table alias: `prefixed("m", Message.columns)` → "m.id, m.chat_id, ...".
func prefixed(_ alias: String, _ columns: String) -> String {
    columns.split(separator: ",").map { "\(alias).\($0.trimmingCharacters(in: .whitespacesAndNewlines))" }.joined(separator: ", ")
}

/// Clamps page sizes to something sane.
func pageSize(_ limit: Int) -> Int { min(max(limit, 1), 1000) }
