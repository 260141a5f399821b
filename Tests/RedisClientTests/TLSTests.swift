/// `rediss://` against a redis-server of the test's own listening with TLS (its `tls-port`) on
/// throw-away certificates: commands work when the client trusts the server's CA, and a client
/// that trusts another CA is refused with an error that says why. A server that asks clients for
/// a certificate gets the one `cert`/`key` name, and refuses a client without one.
import Foundation
import NIOCore
import RedisClient
import TestSupport
import Testing

@Suite("Redis over TLS")
struct TLSTests {
    static func withTLSServer(
        serverNames: String = "DNS:localhost,IP:127.0.0.1", clientsPresentCertificates: Bool = false,
        _ body: (_ tlsPort: Int, _ certificates: TestCertificates) async throws -> Void
    ) async throws {
        let certificates = try await TestCertificates.make(serverNames: serverNames)
        let tlsPort = try TestServices.freePort()
        let server = try await PrivateRedisServer(extraArguments: [
            "--tls-port", "\(tlsPort)", "--tls-cert-file", certificates.serverCertificateFile,
            "--tls-key-file", certificates.serverKeyFile, "--tls-ca-cert-file", certificates.caFile,
            "--tls-auth-clients", clientsPresentCertificates ? "yes" : "no",
        ])
        do {
            try await body(tlsPort, certificates)
        } catch {
            await server.destroy()
            certificates.destroy()
            throw error
        }
        await server.destroy()
        certificates.destroy()
    }

    @Test func commandsWorkOverTLSWhenTheServersCAIsTrusted() async throws {
        try await Self.withTLSServer { port, certificates in
            for host in ["127.0.0.1", "localhost"] {
                var configuration = try RedisConfiguration(url: "rediss://\(host):\(port)/0?ca=\(certificates.caFile)")
                configuration.connectTimeout = .seconds(3)
                let client = RedisClient(configuration: configuration, logger: TestServices.logger("redis-tls"))
                try await client.set("tls-probe", "over \(host)")
                #expect(try await client.get("tls-probe") == Array("over \(host)".utf8))
                // A blocking read takes a connection of its own: TLS too.
                let entries = try await client.xread(streams: [("tls-stream", "0-0")], count: 1, block: .milliseconds(50))
                #expect(entries.isEmpty)
                await client.close()
            }
        }
    }

    @Test func aClientCertificateIsPresentedWhenTheServerAsksForOne() async throws {
        // `cert` and `key` name the client's own certificate (here one the server's CA signed).
        try await Self.withTLSServer(clientsPresentCertificates: true) { port, certificates in
            let files = "ca=\(certificates.caFile)&cert=\(certificates.serverCertificateFile)&key=\(certificates.serverKeyFile)"
            var configuration = try RedisConfiguration(url: "rediss://127.0.0.1:\(port)/0?\(files)")
            configuration.connectTimeout = .seconds(3)
            let client = RedisClient(configuration: configuration, logger: TestServices.logger("redis-tls"))
            try await client.set("mtls-probe", "with a certificate")
            #expect(try await client.get("mtls-probe") == Array("with a certificate".utf8))
            await client.close()

            var anonymous = try RedisConfiguration(url: "rediss://127.0.0.1:\(port)/0?ca=\(certificates.caFile)")
            anonymous.connectTimeout = .seconds(2)
            let refused = RedisClient(configuration: anonymous, logger: TestServices.logger("redis-tls"))
            await #expect(throws: RedisError.self) { try await refused.ping() }
            await refused.close()
        }
    }

    @Test func aCertificateForAnotherNameIsRefused() async throws {
        // Issued to localhost only: connecting by address, or naming another server, must fail.
        try await Self.withTLSServer(serverNames: "DNS:localhost") { port, certificates in
            for query in ["", "&server_name=redis.example.com"] {
                var configuration = try RedisConfiguration(url: "rediss://127.0.0.1:\(port)/0?ca=\(certificates.caFile)\(query)")
                configuration.connectTimeout = .seconds(2)
                let client = RedisClient(configuration: configuration, logger: TestServices.logger("redis-tls"))
                let error = await #expect(throws: RedisError.self) { try await client.ping() }
                #expect("\(error.map { "\($0)" } ?? "")".contains("TLS handshake"), "\(String(describing: error))")
                await client.close()
            }
            var named = try RedisConfiguration(url: "rediss://127.0.0.1:\(port)/0?ca=\(certificates.caFile)&server_name=localhost")
            named.connectTimeout = .seconds(2)
            let client = RedisClient(configuration: named, logger: TestServices.logger("redis-tls"))
            try await client.ping()
            await client.close()
        }
    }

    @Test func aServerSignedByAnotherCAIsRefusedNamingTheHandshake() async throws {
        try await Self.withTLSServer { port, certificates in
            var configuration = try RedisConfiguration(url: "rediss://127.0.0.1:\(port)/0?ca=\(certificates.otherCAFile)")
            configuration.connectTimeout = .seconds(2)
            let client = RedisClient(configuration: configuration, logger: TestServices.logger("redis-tls"))
            let error = await #expect(throws: RedisError.self) { try await client.ping() }
            let text = "\(error.map { "\($0)" } ?? "")"
            #expect(text.contains("TLS handshake with 127.0.0.1:\(port) failed"), "\(text)")
            #expect(text.lowercased().contains("certificate"), "\(text)")
            await client.close()

            // Plain TCP to a TLS port is no Redis either: it fails, it does not hang.
            var plain = try RedisConfiguration(url: "redis://127.0.0.1:\(port)/0")
            plain.connectTimeout = .seconds(1)
            plain.commandTimeout = .seconds(1)
            let plainClient = RedisClient(configuration: plain, logger: TestServices.logger("redis-tls"))
            await #expect(throws: RedisError.self) { try await plainClient.ping() }
            await plainClient.close()
        }
    }
}
