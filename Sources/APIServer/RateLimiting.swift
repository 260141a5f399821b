import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RedisClient
import SwitchboardCore

/// The outcome of one rate-limit check.
public struct RateLimitDecision: Sendable, Equatable {
    public var allowed: Bool
    public var limit: Int
    public var remaining: Int
    /// Milliseconds until a request would be allowed (0 when allowed).
    public var retryAfterMilliseconds: Int
    /// Milliseconds until the full burst is available again.
    public var resetMilliseconds: Int
}

/// GCRA in one Lua script per check: Redis keeps the theoretical arrival time of each subject, so
/// every api node shares the same budget and a check is one round trip.
public struct RateLimiter: Sendable {
    let redis: RedisClient

    public init(redis: RedisClient) { self.redis = redis }

    static let script = RedisScript("""
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
        local interval = tonumber(ARGV[1])
        local tolerance = interval * tonumber(ARGV[2])
        local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
        if tat < now then tat = now end
        local new_tat = tat + interval
        local allow_at = new_tat - tolerance
        if allow_at > now then
          return {0, 0, math.ceil(allow_at - now), math.ceil(tat - now)}
        end
        redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1)
        return {1, math.floor((tolerance - (new_tat - now)) / interval), 0, math.ceil(new_tat - now)}
        """)

    /// Takes one request from `subject`'s budget under `rule`.
    public func check(subject: String, rule: RateLimitRule) async throws -> RateLimitDecision {
        let periodMs = Double(rule.period.components.seconds) * 1000 + Double(rule.period.components.attoseconds) / 1e15
        let interval = periodMs / Double(rule.limit)
        let reply = try await redis.evalScript(
            Self.script, keys: ["ratelimit:\(subject)"], args: [String(format: "%.6f", interval), rule.burst])
        guard let values = reply.array?.compactMap(\.int), values.count == 4 else {
            throw RedisError.protocolError("rate limit script answered \(reply)")
        }
        return RateLimitDecision(
            allowed: values[0] == 1, limit: rule.burst, remaining: Int(max(0, values[1])),
            retryAfterMilliseconds: Int(values[2]), resetMilliseconds: Int(values[3]))
    }
}

/// Applies one rate limit to the routes behind it: per client IP (before authentication) or per
/// user (after it). Answers 429 with `Retry-After`; every answer carries `RateLimit-*` headers.
struct RateLimitMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    enum Subject { case clientIP, user }

    let limiter: RateLimiter
    let rule: RateLimitRule
    let subject: Subject
    let trustedProxies: Int

    static let limitHeader = HTTPField.Name("RateLimit-Limit")!
    static let remainingHeader = HTTPField.Name("RateLimit-Remaining")!
    static let resetHeader = HTTPField.Name("RateLimit-Reset")!
    static let retryAfterHeader = HTTPField.Name("Retry-After")!

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let key: String
        switch subject {
        case .clientIP: key = "ip:\(clientIP(request, context))"
        case .user: key = "user:\(try context.requireCaller().user.id)"
        }
        let decision = try await limiter.check(subject: key, rule: rule)
        var headers: HTTPFields = [
            Self.limitHeader: "\(decision.limit)",
            Self.remainingHeader: "\(decision.remaining)",
            Self.resetHeader: "\(Self.seconds(decision.resetMilliseconds))",
        ]
        guard decision.allowed else {
            headers[Self.retryAfterHeader] = "\(max(1, Self.seconds(decision.retryAfterMilliseconds)))"
            var response = JSONErrorMiddleware<Context>.response(
                status: 429, code: SwitchboardError.Code.rateLimited.rawValue,
                message: "too many requests; retry in \(max(1, Self.seconds(decision.retryAfterMilliseconds))) s")
            response.headers.append(contentsOf: headers)
            return response
        }
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            response = JSONErrorMiddleware<Context>.response(for: error, request: request, context: context)
        }
        // The user limit runs inside the IP limit: the innermost (user) figures win.
        for field in headers where response.headers[field.name] == nil { response.headers.append(field) }
        return response
    }

    func clientIP(_ request: Request, _ context: Context) -> String {
        Self.clientIP(
            forwardedFor: request.headers[values: HTTPField.Name("X-Forwarded-For")!], peer: context.remoteAddress?.ipAddress,
            trustedProxies: trustedProxies)
    }

    /// The client's address: the peer's when no proxy is trusted; else the `trustedProxies`-th
    /// address from the right of every `X-Forwarded-For` line joined (each proxy appends the
    /// address it received from), so entries a client wrote itself, on the left, are never taken.
    static func clientIP(forwardedFor lines: [String], peer: String?, trustedProxies: Int) -> String {
        let peer = peer ?? "unknown"
        guard trustedProxies > 0 else { return peer }
        let hops = lines.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        guard hops.count >= trustedProxies else { return peer }
        let client = hops[hops.count - trustedProxies]
        return client.isEmpty ? peer : String(client.prefix(64))
    }

    static func seconds(_ milliseconds: Int) -> Int { (milliseconds + 999) / 1000 }
}
