/// How a turn's stream ends: the final events (`complete`, `error`), their error codes, and the
/// one API every writer of a final event uses (`TurnStreamWriter.end`), the worker's turn job and
/// the api's stop and submit-failure paths alike, so a stream ends the same way whoever ends it.
import Foundation
import SwitchboardCore

/// The codes of a turn's `error` event that the turn path itself writes (the pipeline adds its
/// own, such as `reply_failed` or `provider_failed`). docs/api.md lists them for clients.
public enum TurnErrorKind {}

extension ErrorCode where Kind == TurnErrorKind {
    /// The user stopped the turn.
    public static var cancelled: Self { "cancelled" }
    /// The message (with its chat) was deleted before its turn finished.
    public static var messageDeleted: Self { "message_deleted" }
    /// The turn failed; the stored message says why (answered from the database).
    public static var turnFailed: Self { "turn_failed" }
    /// The turn could not be queued; the message was stored as failed.
    public static var queueUnavailable: Self { "queue_unavailable" }
    /// Something unexpected failed on the turn's last attempt.
    public static var internalError: Self { "internal_error" }
}

/// The reason a turn's stream ends.
public enum TurnEnding: Sendable, Equatable {
    /// The reply is stored (`complete`).
    case completed(TurnCompletion)
    /// The turn ended without an answer (`error`), with the code and the message the client sees.
    case failed(code: String, message: String)

    public static var cancelled: TurnEnding { .cancelled(message: nil) }
    public static func cancelled(message: String?) -> TurnEnding {
        .failed(code: ErrorCode<TurnErrorKind>.cancelled.rawValue, message: message ?? "stopped by the user")
    }

    public static var deleted: TurnEnding {
        .failed(code: ErrorCode<TurnErrorKind>.messageDeleted.rawValue, message: "the message was deleted before its turn finished")
    }

    public static var queueUnavailable: TurnEnding {
        .failed(code: ErrorCode<TurnErrorKind>.queueUnavailable.rawValue, message: "the turn could not be queued")
    }

    public static func failed<Kind>(_ code: ErrorCode<Kind>, _ message: String) -> TurnEnding {
        .failed(code: code.rawValue, message: message)
    }

    /// How the stream of `message` (a user's message whose status is final) ends, with the id of
    /// its stored reply when there is one: what a worker writes when it finds a finished turn,
    /// and what the api answers when that turn's stream has expired.
    public static func of(finished message: Message, replyID: Int64?) -> TurnEnding {
        switch message.status {
        case .cancelled:
            return .cancelled(message: message.error)
        case .failed:
            return .failed(ErrorCode<TurnErrorKind>.turnFailed, message.error ?? "the turn failed")
        default:
            return .completed(TurnCompletion(messageId: message.id, replyId: replyID, topic: message.topic, language: message.language))
        }
    }

    /// The final event that says so.
    public var event: TurnEvent {
        switch self {
        case .completed(let completion): .complete(completion)
        case .failed(let code, let message): .error(code: code, message: message)
        }
    }
}

extension TurnStreamWriter {
    /// Ends the stream with `ending`'s final event unless it has ended already (then nil).
    @discardableResult
    public func end(_ ending: TurnEnding) async throws -> String? {
        try await append(ending.event)
    }
}
