import Hummingbird
import Logging
import NIOCore
import SwitchboardCore

/// The caller an API key identified, or a sign-in session of the web pages (`keyID` 0).
public struct AuthenticatedCaller: Sendable, Equatable {
    public var user: User
    public var keyID: Int64
    /// The sign-in session, when the caller came with the web pages' cookie instead of a key.
    public var session: WebSessions.Session? = nil
}

/// The request context of every api route: the peer address (for per-IP limits) and, once the
/// authenticator ran, the caller.
public struct APIRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    public var caller: AuthenticatedCaller?
    /// Rate-limit headers to add to the response (set by the limiter, kept on errors too).
    var rateLimitHeaders: HTTPFields = [:]
    /// Set when the request came to the turn stream channel handlers (`TurnStreamConnections`):
    /// a turn stream route hands its stream to them here instead of streaming a body.
    var streamHandoff: TurnStreamHandoff?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// The authenticated caller; routes behind the authenticator only.
    func requireCaller() throws -> AuthenticatedCaller {
        guard let caller else { throw SwitchboardError(.unauthorized, status: 401, "authentication required") }
        return caller
    }
}
