/// The seam between the turn job and what answers a turn: the request a responder gets, the
/// and the `TurnResponder` protocol.
import Foundation
import Logging
import Storage
import SwitchboardCore
import Turns

/// What a responder gets to answer: the user's message and where to report progress.
public struct TurnRequest: Sendable {
    /// The message with its attachment count and the chat's earlier messages (read in one query).
    public var context: MessageContext
    public var message: Message {
        get { context.message }
        set { context.message = newValue }
    }
    /// 1 on the first run; more when the job was redelivered after a failure or a dead worker.
    public var attempt: Int
    /// An earlier run had started this turn (it shows as `restarted`).
    public var isRestart: Bool
    public var logger: Logger

    public init(context: MessageContext, attempt: Int, isRestart: Bool = false, logger: Logger) {
        self.context = context
        self.attempt = attempt
        self.isRestart = isRestart
        self.logger = logger
    }
}

/// Produces the answer of a turn: `RoutingPipeline` in every role; tests bring their own.
/// Implementations check `Task.isCancelled` between steps: a stop request cancels the task.
public protocol TurnResponder: Sendable {
    /// How many of the chat's earlier messages the turn job reads with the message (in the same
    /// query) for this responder to use as history.
    var earlierMessages: Int { get }
    /// Answers `request`, reporting progress to `events`; throws `PipelineError` for a failure
    /// the user sees as the turn's `error` event.
    func respond(to request: TurnRequest, events: any TurnEventSink) async throws -> TurnOutcome
}
