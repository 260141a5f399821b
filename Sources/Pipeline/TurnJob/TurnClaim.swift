/// The `queued → running` claim a turn job makes while it already answers (see `TurnRunner`).
import Foundation

/// The `queued → running` commit of a turn, made while the turn already reads, classifies and
/// plans: its events are held until the commit owns the message (`TurnEventQueue`'s gate).
final class TurnClaim: Sendable {
    private let commit: Task<Bool, any Error>

    init(_ commit: @escaping @Sendable () async throws -> Bool) {
        self.commit = Task { try await commit() }
    }

    /// True when the commit changed the message (this run owns it).
    var owned: Bool {
        get async throws { try await commit.value }
    }

    /// Returns once the turn owns its message; throws `TurnClaimLost` when something else changed it first.
    func confirm() async throws {
        guard try await owned else { throw TurnClaimLost() }
    }
}

/// The message changed status before this run could claim it (a stop request, another worker).
struct TurnClaimLost: Error {}
