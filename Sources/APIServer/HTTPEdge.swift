/// APIServer owns the HTTP surface of the api role: routes (REST, SSE, webhooks, health, metrics),
/// authentication, validation, idempotency and rate limits, and the one JSON error shape every
/// failure is answered with.
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RedisClient
import Storage
import SwitchboardCore

/// The one JSON error shape every 4xx/5xx answer uses: `{"error": {"code", "message"}}`.
struct ErrorBody: Encodable {
    struct Detail: Encodable {
        let code: String
        let message: String
        let status: Int
    }
    let error: Detail
}

/// Maps any thrown error to the JSON error shape, once, at the edge. Internal errors are logged
/// with the request id and answered without leaking their details.
public struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            return Self.response(for: error, request: request, context: context)
        }
    }

    /// The JSON error answer of `error` (also used by middleware that must add headers to errors).
    static func response(for error: any Error, request: Request, context: some RequestContext) -> Response {
        switch error {
        case let error as SwitchboardError:
            return Self.response(status: error.status, code: error.code.rawValue, message: error.message)
        case let error as HTTPError:
            let code: String
            switch error.status.code {
            case 404: code = SwitchboardError.Code.notFound.rawValue
            case 405: code = SwitchboardError.Code.methodNotAllowed.rawValue
            case 413: code = SwitchboardError.Code.payloadTooLarge.rawValue
            case 401: code = SwitchboardError.Code.unauthorized.rawValue
            case 400..<500: code = SwitchboardError.Code.badRequest.rawValue
            default: code = SwitchboardError.Code.internalError.rawValue
            }
            let message = error.body ?? (error.status.code == 404 ? "no route for \(request.method) \(request.uri.path)" : error.status.reasonPhrase)
            var response = Self.response(status: Int(error.status.code), code: code, message: message)
            for field in error.headers where field.name != .contentType && field.name != .contentLength { response.headers.append(field) }
            return response
        case let error as any HTTPResponseError:
            return Self.response(status: Int(error.status.code), code: SwitchboardError.Code.badRequest.rawValue, message: error.status.reasonPhrase)
        default:
            if let what = Unreachable.dependency(of: error) {
                // The database or Redis is down or restarting: a clear 503 the client may retry
                // (with its Idempotency-Key), not a 500, which would say the request broke something.
                context.logger.warning("dependency unreachable", metadata: ["error": "\(error)"])
                var response = Self.response(status: 503, code: SwitchboardError.Code.unavailable.rawValue, message: "\(what) is unavailable; retry shortly")
                response.headers[HTTPField.Name("Retry-After")!] = "1"
                return response
            }
            context.logger.error("unhandled error", metadata: ["error": "\(String(reflecting: error))"])
            return Self.response(status: 500, code: SwitchboardError.Code.internalError.rawValue, message: "internal error (request \(context.id))")
        }
    }

    static func response(status: Int, code: String, message: String) -> Response {
        let body = ErrorBody(error: .init(code: code, message: message, status: status))
        let data = (try? JSONEncoder().encode(body)) ?? Data("{\"error\":{\"code\":\"internal_error\",\"message\":\"\",\"status\":500}}".utf8)
        return Response(
            status: .init(code: status),
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }
}

/// Echoes the request id (Hummingbird puts it in the logger as `hb.request.id`) so a user can quote
/// it when reporting a problem; a caller's own `X-Request-ID` is logged beside it.
public struct RequestIDMiddleware<Context: RequestContext>: RouterMiddleware {
    public static var header: HTTPField.Name { HTTPField.Name("X-Request-ID")! }

    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if let callerID = request.headers[Self.header], callerID.count <= 128 {
            context.logger[metadataKey: "caller.request.id"] = .string(callerID)
        }
        var response = try await next(request, context)
        response.headers[Self.header] = context.id
        return response
    }
}

/// Errors that mean a dependency is down rather than that the request failed.
enum Unreachable {
    /// What could not be reached when `error` says a dependency is down (MariaDB refused or lost
    /// the connection, no pooled connection came free, a lock stayed contended, Redis could not be reached or went away
    /// mid-command, or did not answer in time); nil for any other error.
    static func dependency(of error: any Error) -> String? {
        switch error {
        case let error as DatabaseError:
            // A deadlock that outlasted the transaction's retries, or a row lock not granted in
            // time, is contention that passes: the request did nothing and may be sent again.
            let outages: Set<DatabaseError.Code> = [.connectFailed, .connectionLost, .poolTimeout, .deadlock, .lockWaitTimeout]
            return outages.contains(error.code) ? "the database" : nil
        case let error as RedisError:
            switch error {
            case .connectionClosed, .unavailable, .timeout: return "Redis"
            case .server where error.serverErrorCode == "LOADING": return "Redis"
            default: return nil
            }
        default:
            return nil
        }
    }
}
