import Foundation
import Logging
import NIOCore
import RedisClient
import TestSupport

/// The shared Redis the suites use, with a random key prefix per test.
extension TestRedis {
    static var url: String { TestServices.redisURL }
    static var logger: Logger { TestServices.logger("redis-tests") }

    /// A client on the shared server with its own prefix; deletes its keys when `body` ends.
    static func withClient(
        url: String = url, poolSize: Int? = nil, _ body: (RedisClient) async throws -> Void
    ) async throws {
        var configuration = try RedisConfiguration(url: url)
        configuration.keyPrefix = randomPrefix()
        configuration.connectTimeout = .seconds(3)
        if let poolSize { configuration.poolSize = poolSize }
        let client = RedisClient(configuration: configuration, logger: logger)
        do {
            try await body(client)
            await cleanUp(client)
        } catch {
            await cleanUp(client)
            throw error
        }
    }

    static func cleanUp(_ client: RedisClient) async {
        await discard(client)
    }

    /// `withClient` on a redis-server of the test's own, for tests that flush its script cache
    /// (on the shared server that would pull scripts from under every other suite's pipelines).
    static func withPrivateServer(_ body: (RedisClient) async throws -> Void) async throws {
        let server = try await PrivateRedisServer()
        do {
            try await withClient(url: server.url, body)
        } catch {
            await server.destroy()
            throw error
        }
        await server.destroy()
    }
}

extension Array where Element == UInt8 {
    var text: String { String(decoding: self, as: UTF8.self) }
}
