/// A `GatewayServer` on real loopback sockets (both listeners on free ports) over the Redis engine,
/// under a key prefix of its own, for the duration of a test's body.
import Foundation
import Logging
import ServiceLifecycle
import TestSupport

@testable import Gateway

enum LiveGateway {
    static let apiKey = "live-gateway-test-key"
    static let tokenSecret = "live-gateway-test-secret"

    static func with(
        _ configure: (inout GatewayConfiguration) -> Void = { _ in },
        _ body: (_ ports: GatewayServer.ListeningPorts) async throws -> Void
    ) async throws {
        let redis = try TestRedis.client(prefix: TestRedis.randomPrefix("gateway-live"))
        var configuration = GatewayConfiguration()
        configuration.port = 0
        configuration.internalPort = 0
        configuration.apiKey = apiKey
        configuration.tokenSecret = tokenSecret
        configuration.namespaces = [NamespaceConfiguration(name: "chat")]
        configure(&configuration)
        let (stream, continuation) = AsyncStream<GatewayServer.ListeningPorts>.makeStream()
        let server = GatewayServer(configuration: configuration, redis: redis, logger: Logger(label: "test")) { ports in
            continuation.yield(ports)
        }
        let group = ServiceGroup(configuration: .init(services: [server], logger: Logger(label: "test")))
        let running = Task { try await group.run() }
        var iterator = stream.makeAsyncIterator()
        let outcome: Result<Void, any Error>
        if let ports = await iterator.next() {
            do {
                try await body(ports)
                outcome = .success(())
            } catch {
                outcome = .failure(error)
            }
        } else {
            outcome = .failure(CancellationError())
        }
        await group.triggerGracefulShutdown()
        _ = await running.result
        await TestRedis.discard(redis)
        try outcome.get()
    }
}
