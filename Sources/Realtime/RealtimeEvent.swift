/// The JSON envelope of every live-support event on the gateway: `{"type", "ts", "data"}`.
import Foundation

/// One event: `type` names it, `ts` is milliseconds since 1970, `data` its payload.
public struct RealtimeEvent: Sendable {
    public var type: String
    public var ts: Int64
    /// The payload as JSON text.
    public var data: String

    public init(type: String, data: [String: Any], at date: Date = Date()) {
        self.type = type
        self.ts = Int64((date.timeIntervalSince1970 * 1000).rounded())
        self.data = Self.serialize(data)
    }

    /// The envelope as JSON text.
    public var json: String {
        "{\"type\":\(Self.serialize(type)),\"ts\":\(ts),\"data\":\(data)}"
    }

    static func serialize(_ value: Any) -> String {
        guard let bytes = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes]) else {
            return "null"
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: - Live support's events

    /// `message` on a session channel.
    public static func message(id: Int64, role: String, content: String, operatorName: String? = nil) -> RealtimeEvent {
        var data: [String: Any] = ["id": id, "role": role, "content": content]
        if let operatorName { data["operatorName"] = operatorName }
        return RealtimeEvent(type: "message", data: data)
    }

    /// `mode` on a session channel.
    public static func mode(_ mode: String, operatorName: String? = nil) -> RealtimeEvent {
        var data: [String: Any] = ["mode": mode]
        if let operatorName { data["operatorName"] = operatorName }
        return RealtimeEvent(type: "mode", data: data)
    }

    /// `notification` on an operators channel; `kind` is `session_started`, `new_message` or `handoff`.
    public static func notification(kind: String, sessionID: String, preview: String) -> RealtimeEvent {
        RealtimeEvent(type: "notification", data: ["kind": kind, "sessionId": sessionID, "preview": String(preview.prefix(200))])
    }

    /// `notification` of kind `mode_changed` on an operators channel: an operator took a session
    /// over, handed it back or closed it, so every other operator's list shows it at once.
    public static func modeChanged(sessionID: String, mode: String, operatorName: String?, closed: Bool) -> RealtimeEvent {
        var data: [String: Any] = ["kind": "mode_changed", "sessionId": sessionID, "preview": "", "mode": mode, "closed": closed]
        if let operatorName { data["operatorName"] = operatorName }
        return RealtimeEvent(type: "notification", data: data)
    }

    /// `typing` on a typing channel; `from` is `visitor`, `operator` or `assistant`.
    public static func typing(from: String, at date: Date = Date()) -> RealtimeEvent {
        RealtimeEvent(type: "typing", data: ["from": from, "ts": Int64((date.timeIntervalSince1970 * 1000).rounded())], at: date)
    }
}
