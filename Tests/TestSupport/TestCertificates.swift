import Foundation

/// Throw-away TLS material for tests of encrypted connections, made with the `openssl` command:
/// a CA, a server certificate it signed (for `localhost` and 127.0.0.1 unless told otherwise), and
/// a second CA that signed nothing the servers present (a client trusting only it must refuse them).
public struct TestCertificates: Sendable {
    public let directory: String
    public var caFile: String { directory + "/ca.pem" }
    public var serverCertificateFile: String { directory + "/server.pem" }
    public var serverKeyFile: String { directory + "/server.key" }
    public var otherCAFile: String { directory + "/other-ca.pem" }

    public struct Failed: Error, CustomStringConvertible {
        public var description: String
    }

    /// Makes the files in a new temporary directory (remove it with `destroy()`).
    /// `serverNames` is the server certificate's subjectAltName.
    public static func make(serverNames: String = "DNS:localhost,IP:127.0.0.1") async throws -> TestCertificates {
        let directory = NSTemporaryDirectory() + "sb-test-tls-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "subjectAltName=\(serverNames)\n".write(toFile: directory + "/server.ext", atomically: true, encoding: .utf8)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        for arguments in [
            ["req", "-x509"] + ec + ["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Switchboard test CA"],
            ["req", "-x509"] + ec + ["-keyout", "other-ca.key", "-out", "other-ca.pem", "-days", "2", "-subj", "/CN=Another CA"],
            ["req"] + ec + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"],
            ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem",
             "-days", "2", "-extfile", "server.ext"],
        ] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["openssl"] + arguments
            process.currentDirectoryURL = URL(fileURLWithPath: directory)
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            await process.waitForExit()
            guard process.terminationStatus == 0 else {
                throw Failed(description: "openssl \(arguments.prefix(2).joined(separator: " ")) exited with \(process.terminationStatus)")
            }
        }
        // Servers running as another user (mariadbd) must read the key.
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory)
        for file in ["server.key", "server.pem", "ca.pem"] {
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: directory + "/" + file)
        }
        return TestCertificates(directory: directory)
    }

    public func destroy() {
        try? FileManager.default.removeItem(atPath: directory)
    }
}
