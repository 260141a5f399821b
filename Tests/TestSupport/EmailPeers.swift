import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The real mail servers the email tests talk to, on loopback with throw-away configuration:
/// aiosmtpd (PyPI) recording what it receives, and Debian's Dovecot serving one IMAP mailbox.
public enum EmailPeers {
    /// The repository's root (from this file's place in it).
    static var root: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// The project's Python (scripts/python-env creates it once with scripts/requirements-test.txt).
    static func python() throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: root + "/scripts/python-env")
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestPeerError("scripts/python-env failed") }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func run(_ executable: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestPeerError("\(executable) \(arguments.joined(separator: " ")) failed") }
    }

    /// A self-signed certificate for 127.0.0.1 / localhost: (cert, key) paths in `directory`.
    public static func selfSignedCertificate(in directory: String) throws -> (cert: String, key: String) {
        let cert = directory + "/cert.pem", key = directory + "/key.pem"
        try run("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", key, "-out", cert,
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        return (cert, key)
    }
}

public struct TestPeerError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// aiosmtpd on a free loopback port, recording each message it accepts (Tests/EmailPeers/smtp_recorder.py).
public final class SMTPRecorder: @unchecked Sendable {
    public struct Received: Sendable {
        public var mailFrom: String
        public var recipients: [String]
        public var data: [UInt8]
        public var tls: Bool
        public var authenticated: Bool
    }

    public let port: Int
    public let directory: String
    /// The CA file that trusts this server (its self-signed certificate), when it speaks STARTTLS.
    public let certificate: String?
    private let process: Process

    /// Whether the server speaks TLS from the first byte (`smtps://`).
    public let implicitTLS: Bool

    /// `tls`: STARTTLS required, with a fresh self-signed certificate (`implicitTLS`: TLS from the
    /// first byte instead); `auth`: AUTH required with these credentials.
    public init(tls: Bool = false, implicitTLS: Bool = false, auth: (user: String, password: String)? = nil) async throws {
        self.implicitTLS = implicitTLS
        port = try TestServices.freePort()
        directory = NSTemporaryDirectory() + "sb-test-smtp-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory + "/mail", withIntermediateDirectories: true)
        var arguments = [EmailPeers.root + "/Tests/EmailPeers/smtp_recorder.py", "--port", "\(port)", "--dir", directory + "/mail"]
        if tls || implicitTLS {
            let (cert, key) = try EmailPeers.selfSignedCertificate(in: directory)
            arguments += ["--cert", cert, "--key", key] + (implicitTLS ? ["--implicit-tls"] : [])
            certificate = cert
        } else {
            certificate = nil
        }
        if let auth { arguments += ["--auth", "\(auth.user):\(auth.password)"] }
        process = Process()
        process.executableURL = URL(fileURLWithPath: try EmailPeers.python())
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        for _ in 0..<400 {
            if TestServices.accepts(port: port) { return }
            try await Task.sleep(for: .milliseconds(25))
        }
        stop()
        throw TestPeerError("aiosmtpd did not start on port \(port)")
    }

    public var url: String { "\(implicitTLS ? "smtps" : "smtp")://127.0.0.1:\(port)" }

    /// What the server accepted so far, in order.
    public func received() throws -> [Received] {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory + "/mail").filter { $0.hasSuffix(".json") }.sorted()
        return try names.map { name in
            let data = try Data(contentsOf: URL(fileURLWithPath: directory + "/mail/" + name))
            let json = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
            return Received(
                mailFrom: json["mail_from"] as? String ?? "", recipients: json["rcpt_tos"] as? [String] ?? [],
                data: Array(Data(base64Encoded: json["data"] as? String ?? "") ?? Data()), tls: json["tls"] as? Bool ?? false,
                authenticated: json["authenticated"] as? Bool ?? false)
        }
    }

    /// Waits until at least `count` messages arrived (a peer's work finishes asynchronously).
    public func waitFor(_ count: Int, attempts: Int = 600) async throws -> [Received] {
        for _ in 0..<attempts {
            let received = try self.received()
            if received.count >= count { return received }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestPeerError("the SMTP server received \(try received().count) message(s), expected \(count)")
    }

    public func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

/// Dovecot serving one mailbox (user `box`) over IMAP on a free loopback port, without TLS or
/// over implicit TLS (`imaps://`, a fresh self-signed certificate), from a throw-away directory.
/// Tests fill the mailbox by delivering into its Maildir, as a local MTA would. `log` holds
/// Dovecot's log, whose logout lines count what each session fetched.
public final class DovecotServer: @unchecked Sendable {
    public let port: Int
    public let directory: String
    /// The CA file that trusts this server (its self-signed certificate), when it speaks TLS.
    public let certificate: String?
    public let user = "box"
    public let password = "box-\(UUID().uuidString.prefix(8))"
    private var delivered = 0
    private let process: Process

    public init(tls: Bool = false) async throws {
        guard FileManager.default.fileExists(atPath: "/usr/sbin/dovecot") else { throw TestPeerError("dovecot-imapd is not installed (scripts/services install)") }
        port = try TestServices.freePort()
        directory = "/tmp/sb-dovecot-\(UUID().uuidString.prefix(8))"
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory + "/run", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: directory + "/home/Maildir/new", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: directory + "/home/Maildir/cur", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: directory + "/home/Maildir/tmp", withIntermediateDirectories: true)
        // Dovecot refuses mail access as root: the mailbox belongs to nobody.
        try EmailPeers.run("/bin/chown", ["-R", "65534:65534", directory + "/home"])
        try "\(user):{PLAIN}\(password):65534:65534::\(directory)/home\n".write(toFile: directory + "/passwd", atomically: true, encoding: .utf8)
        var ssl = "ssl = no"
        if tls {
            let (cert, key) = try EmailPeers.selfSignedCertificate(in: directory)
            ssl = "ssl = required\nssl_cert = <\(cert)\nssl_key = <\(key)"
            certificate = cert
        } else {
            certificate = nil
        }
        let configuration = """
            protocols = imap
            listen = 127.0.0.1
            base_dir = \(directory)/run
            instance_name = sb-\(port)
            log_path = \(directory)/dovecot.log
            \(ssl)
            disable_plaintext_auth = no
            auth_mechanisms = plain login
            mail_location = maildir:~/Maildir
            passdb {
              driver = passwd-file
              args = scheme=PLAIN username_format=%u \(directory)/passwd
            }
            userdb {
              driver = passwd-file
              args = username_format=%u \(directory)/passwd
            }
            service imap-login {
              chroot =
              inet_listener imap {
                address = 127.0.0.1
                port = \(tls ? 0 : port)
              }
              inet_listener imaps {
                address = 127.0.0.1
                port = \(tls ? port : 0)
              }
            }
            service anvil {
              chroot =
            }
            """
        try configuration.write(toFile: directory + "/dovecot.conf", atomically: true, encoding: .utf8)
        // In the foreground (-F), as a child of ours: a daemon that forks away would hold on to
        // what Foundation's Process watches and never be seen to start.
        process = Process()
        // The test runner blocks SIGTERM and a child inherits the mask: Dovecot starts with it
        // cleared, so it can be stopped (and stops its own children) the ordinary way.
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [
            "-c", "import os, signal; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execv('/usr/sbin/dovecot', ['dovecot', '-F', '-c', '\(directory)/dovecot.conf'])",
        ]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<400 {
            if TestServices.accepts(port: port) { return }
            try await Task.sleep(for: .milliseconds(25))
        }
        stop()
        throw TestPeerError("dovecot did not start on port \(port)")
    }

    public var url: String { "\(certificate == nil ? "imap" : "imaps")://127.0.0.1:\(port)" }

    /// Dovecot's log so far.
    public var log: String { (try? String(contentsOfFile: directory + "/dovecot.log", encoding: .utf8)) ?? "" }

    /// Messages fetched whole (`BODY[]`, peeked or not) over all sessions that logged out so far.
    public var bodiesFetched: Int {
        log.split(separator: "\n").reduce(0) { total, line in
            guard let range = line.range(of: "body_count=") else { return total }
            return total + (Int(line[range.upperBound...].prefix { $0.isNumber }) ?? 0)
        }
    }

    /// Delivers `message` into the mailbox (unseen), as an MDA would.
    public func deliver(_ message: [UInt8]) throws {
        delivered += 1
        let name = "\(Int(Date().timeIntervalSince1970)).M\(delivered)P\(getpid()).sbtest"
        let temporary = directory + "/home/Maildir/tmp/" + name
        try Data(message).write(to: URL(fileURLWithPath: temporary))
        try EmailPeers.run("/bin/chown", ["65534:65534", temporary])
        try FileManager.default.moveItem(atPath: temporary, toPath: directory + "/home/Maildir/new/" + name)
    }

    /// Stops Dovecot (its master stops its own children on SIGTERM) and removes its files.
    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}
