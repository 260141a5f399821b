import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import RedisClient
import SwitchboardCore

/// Idempotency keys as Stripe defines them, kept in Redis per user: the first answer to a key is
/// saved for 24 h and replayed to a retry with the same request; the same key with a different
/// request is a 422; a retry while the first is still running is a 409 (a Redis lock).
struct IdempotencyStore: Sendable {
    enum Begin: Equatable {
        case proceed
        case replay(status: Int, body: [UInt8])
        case mismatch
        case inProgress
    }

    let redis: RedisClient
    let ttl: Duration
    let lockTTL: Duration

    static let header = HTTPField.Name("Idempotency-Key")!
    static let replayedHeader = HTTPField.Name("Idempotent-Replayed")!
    static let maxKeyLength = 255

    // Value layout: "P" + fingerprint while running; "D" + fingerprint + 3-digit status + body when done.
    static let beginScript = RedisScript("""
        local v = redis.call('GET', KEYS[1])
        if not v then
          redis.call('SET', KEYS[1], 'P' .. ARGV[1], 'PX', ARGV[2])
          return {'proceed'}
        end
        if string.sub(v, 2, 1 + string.len(ARGV[1])) ~= ARGV[1] then return {'mismatch'} end
        if string.sub(v, 1, 1) == 'P' then return {'in_progress'} end
        return {'done', v}
        """)

    /// Stores the answer only if the key is still held by the same request.
    static let completeScript = RedisScript("""
        local v = redis.call('GET', KEYS[1])
        if v == 'P' .. ARGV[1] then
          redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
          return 1
        end
        return 0
        """)

    static let abandonScript = RedisScript("""
        if redis.call('GET', KEYS[1]) == 'P' .. ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """)

    static func redisKey(userID: Int64, key: String) -> String {
        "idem:\(userID):\(APIKeySecret.hex(Array(SHA256.hash(data: Array(key.utf8)))))"
    }

    static func fingerprint(method: HTTPRequest.Method, path: String, body: ByteBuffer) -> String {
        var hasher = SHA256()
        hasher.update(data: Array("\(method.rawValue) \(path)\n".utf8))
        hasher.update(data: Array(body.readableBytesView))
        return APIKeySecret.hex(Array(hasher.finalize()))
    }

    /// The key of a request, validated; nil when it sent none.
    static func key(of request: Request) throws -> String? {
        guard let key = request.headers[header] else { return nil }
        guard !key.isEmpty, key.utf8.count <= maxKeyLength else {
            throw SwitchboardError.invalidField("Idempotency-Key", "must be 1 to \(maxKeyLength) characters")
        }
        return key
    }

    func begin(userID: Int64, key: String, fingerprint: String) async throws -> Begin {
        let reply = try await redis.evalScript(
            Self.beginScript, keys: [Self.redisKey(userID: userID, key: key)],
            args: [fingerprint, APITime.milliseconds(lockTTL)])
        guard let parts = reply.array, let verdict = parts.first?.string else {
            throw RedisError.protocolError("idempotency script answered \(reply)")
        }
        switch verdict {
        case "proceed": return .proceed
        case "mismatch": return .mismatch
        case "in_progress": return .inProgress
        default:
            guard parts.count == 2, let stored = parts[1].bytes, stored.count >= 1 + fingerprint.utf8.count + 3 else {
                throw RedisError.protocolError("idempotency record is malformed")
            }
            let statusStart = 1 + fingerprint.utf8.count
            let status = Int(String(decoding: stored[statusStart..<statusStart + 3], as: UTF8.self)) ?? 200
            return .replay(status: status, body: Array(stored[(statusStart + 3)...]))
        }
    }

    func complete(userID: Int64, key: String, fingerprint: String, status: Int, body: [UInt8]) async throws {
        var value = Array("D\(fingerprint)".utf8)
        value += Array(String(format: "%03d", status).utf8)
        value += body
        _ = try await redis.evalScript(
            Self.completeScript, keys: [Self.redisKey(userID: userID, key: key)],
            args: [fingerprint, value, APITime.milliseconds(ttl)])
    }

    func abandon(userID: Int64, key: String, fingerprint: String) async {
        _ = try? await redis.evalScript(Self.abandonScript, keys: [Self.redisKey(userID: userID, key: key)], args: [fingerprint])
    }

    static func conflictError(_ verdict: Begin) -> SwitchboardError? {
        switch verdict {
        case .mismatch:
            SwitchboardError(.idempotencyMismatch, status: 422, "Idempotency-Key was used with a different request")
        case .inProgress:
            SwitchboardError(.idempotencyInProgress, status: 409, "a request with this Idempotency-Key is still in progress")
        default: nil
        }
    }

    static func replayResponse(status: Int, body: [UInt8]) -> Response {
        Response(
            status: .init(code: status),
            headers: [.contentType: "application/json; charset=utf-8", replayedHeader: "true"],
            body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// Applies idempotency keys to every POST behind it (except streaming ones, which use the store directly).
struct IdempotencyMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    let store: IdempotencyStore
    let maxBodyBytes: Int
    /// Paths handled by their route (the answer is a stream, not a body to save).
    let excludedPaths: Set<String>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.method == .post, !excludedPaths.contains(request.uri.path), let key = try IdempotencyStore.key(of: request) else {
            return try await next(request, context)
        }
        let userID = try context.requireCaller().user.id
        var request = request
        let body = try await APIJSON.collect(&request, maxBytes: maxBodyBytes)
        let fingerprint = IdempotencyStore.fingerprint(method: request.method, path: request.uri.path, body: body)
        let verdict = try await store.begin(userID: userID, key: key, fingerprint: fingerprint)
        if case .replay(let status, let stored) = verdict { return IdempotencyStore.replayResponse(status: status, body: stored) }
        if let error = IdempotencyStore.conflictError(verdict) { throw error }

        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            response = JSONErrorMiddleware<Context>.response(for: error, request: request, context: context)
        }
        if response.status.code >= 500 {
            // Not saved: a retry with the same key may succeed.
            await store.abandon(userID: userID, key: key, fingerprint: fingerprint)
            return response
        }
        // Bodies of these answers are small JSON documents; keep a copy to replay.
        let collector = CollectingBodyWriter()
        try await response.body.write(collector)
        let collected = collector.buffer
        try await store.complete(userID: userID, key: key, fingerprint: fingerprint, status: Int(response.status.code), body: Array(collected.readableBytesView))
        response.body = .init(byteBuffer: collected)
        return response
    }
}

enum APITime {
    /// An RFC 3339 time as query parameters carry it (`2026-01-31T00:00:00Z`, with or without
    /// fractional seconds, any offset up to ±23:59); nil for anything else.
    static func date(_ text: String) -> Date? {
        // The offset is applied here: Foundation refuses offsets past ±18 h, which RFC 3339 allows.
        var local = Substring(text)
        var offset = 0
        if local.last == "Z" || local.last == "z" {
            local = local.dropLast()
        } else {
            let tail = Array(local.suffix(6).utf8)
            guard tail.count == 6, tail[0] == UInt8(ascii: "+") || tail[0] == UInt8(ascii: "-"), tail[3] == UInt8(ascii: ":"),
                  let hours = Int(String(decoding: tail[1..<3], as: UTF8.self)), let minutes = Int(String(decoding: tail[4..<6], as: UTF8.self)),
                  tail[1...2].allSatisfy({ $0 >= 48 && $0 <= 57 }), tail[4...5].allSatisfy({ $0 >= 48 && $0 <= 57 }),
                  hours < 24, minutes < 60
            else { return nil }
            offset = (hours * 3600 + minutes * 60) * (tail[0] == UInt8(ascii: "-") ? -1 : 1)
            local = local.dropLast(6)
        }
        let utc = local + "Z"
        guard let date = (try? Date(String(utc), strategy: .iso8601))
            ?? (try? Date(String(utc), strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)))
        else { return nil }
        return date.addingTimeInterval(TimeInterval(-offset))
    }

    static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return max(1, Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000))
    }
}

/// Gathers a response body in memory (small JSON answers only).
final class CollectingBodyWriter: ResponseBodyWriter {
    var buffer = ByteBuffer()

    func write(_ buffer: ByteBuffer) async throws {
        var buffer = buffer
        self.buffer.writeBuffer(&buffer)
    }

    func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
