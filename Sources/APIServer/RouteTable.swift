import HTTPTypes
import Hummingbird
import SwitchboardCore

/// The public routes as registered, so the docs test can hold docs/openapi.yaml against them and a
/// request to a known path with the wrong method answers 405 instead of 404.
public struct RouteDescription: Sendable, Hashable, CustomStringConvertible {
    public var method: HTTPRequest.Method
    /// Hummingbird's form, with `:name` parameters.
    public var path: String

    /// The OpenAPI form, with `{name}` parameters.
    public var openAPIPath: String {
        "/" + path.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }.joined(separator: "/")
    }

    public var description: String { "\(method.rawValue) \(openAPIPath)" }

    /// True when `requestPath` has this route's shape.
    func matches(_ requestPath: Substring) -> Bool {
        let pattern = path.split(separator: "/")
        let parts = requestPath.split(separator: "/")
        guard pattern.count == parts.count else { return false }
        return zip(pattern, parts).allSatisfy { $0.hasPrefix(":") || $0 == $1 }
    }
}

/// Collects the routes while they are added to a router.
final class RouteRecorder: @unchecked Sendable {
    // Only mutated while the router is built, before the server starts.
    private(set) var routes: [RouteDescription] = []

    func record(_ method: HTTPRequest.Method, _ path: String) {
        routes.append(RouteDescription(method: method, path: path))
    }

    /// The methods of the routes the router would take for `path`: like its trie, a literal
    /// segment wins over a parameter (`/messages/stream` is not `/messages/{messageId}`).
    func allowedMethods(for path: Substring) -> [HTTPRequest.Method] {
        let matching = routes.filter { $0.matches(path) }
        func literals(_ route: RouteDescription) -> [Bool] { route.path.split(separator: "/").map { !$0.hasPrefix(":") } }
        guard let best = matching.map(literals).max(by: { $0.lexicographicallyPrecedes($1) { !$0 && $1 } }) else { return [] }
        return matching.filter { literals($0) == best }.map(\.method)
    }
}

/// Turns the router's 404 for a known path into 405 with `Allow`.
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: RouteRecorder

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound && context.endpointPath == "NotFound" {
            let allowed = routes.allowedMethods(for: Substring(request.uri.path))
            guard !allowed.isEmpty else { throw error }
            let names = allowed.map(\.rawValue)
            throw HTTPError(
                .methodNotAllowed, headers: [.allow: names.joined(separator: ", ")],
                message: "\(request.method) is not allowed on \(request.uri.path); use \(names.joined(separator: " or "))")
        }
    }
}
