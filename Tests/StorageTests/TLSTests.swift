/// MariaDB over TLS, against a mariadbd of the test's own started with throw-away certificates:
/// the session is encrypted when the client trusts the server's CA, and a client that trusts
/// another CA is refused with an error that says so.
import Foundation
import Storage
import TestSupport
import Testing

@Suite("MariaDB over TLS")
struct DatabaseTLSTests {
    @Test func connectsOverTLSAndRefusesAServerItDoesNotTrust() async throws {
        let certificates = try await TestCertificates.make()
        let server = try await PrivateMariaDBServer(extraArguments: [
            "--ssl-cert=\(certificates.serverCertificateFile)", "--ssl-key=\(certificates.serverKeyFile)", "--ssl-ca=\(certificates.caFile)",
        ])
        do {
            let trusted = try DatabaseConfiguration(url: "mariadb://root@127.0.0.1:\(server.port)/mysql?pool=1&ssl_ca=\(certificates.caFile)")
            #expect(trusted.tls == DatabaseTLS(caFile: certificates.caFile))
            let database = try await Database.connect(trusted)
            let cipher = try await database.queryFirst("SHOW SESSION STATUS LIKE 'Ssl_cipher'")?.string("Value")
            #expect(cipher?.isEmpty == false, "the session is not encrypted")
            await database.shutdown()

            // The same server, a CA that did not sign its certificate.
            let untrusted = try DatabaseConfiguration(url: "mariadb://root@127.0.0.1:\(server.port)/mysql?pool=1&ssl_ca=\(certificates.otherCAFile)")
            let refused = await #expect(throws: DatabaseError.self) { try await Database.connect(untrusted) }
            #expect(refused?.code == .connectFailed)
            #expect(refused?.message.lowercased().contains("certificate") == true || refused?.message.contains("TLS") == true,
                    "\(refused?.message ?? "")")

            // Without TLS the same server still answers, unencrypted: TLS is the client's choice here.
            let plain = try await Database.connect(try DatabaseConfiguration(url: "mariadb://root@127.0.0.1:\(server.port)/mysql?pool=1"))
            #expect(try await plain.queryFirst("SHOW SESSION STATUS LIKE 'Ssl_cipher'")?.string("Value") == "")
            await plain.shutdown()
        } catch {
            await server.destroy()
            certificates.destroy()
            throw error
        }
        await server.destroy()
        certificates.destroy()
    }

    @Test func aServerWithoutTLSIsRefusedWhenTLSIsAskedFor() async throws {
        let server = try await PrivateMariaDBServer(extraArguments: ["--skip-ssl"])
        do {
            let configuration = try DatabaseConfiguration(url: "mariadb://root@127.0.0.1:\(server.port)/mysql?pool=1&ssl=true")
            let refused = await #expect(throws: DatabaseError.self) { try await Database.connect(configuration) }
            #expect(refused?.code == .connectFailed)
        } catch {
            await server.destroy()
            throw error
        }
        await server.destroy()
    }
}
