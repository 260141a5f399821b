import Foundation
import HummingbirdBcrypt
import NIOPosix
import RedisClient
import Synchronization
import Storage
import SwitchboardCore

/// Passwords for signing in to the web pages: bcrypt hashes (hummingbird-auth's `Bcrypt`),
/// computed and checked on NIO's thread pool, never on an event loop or the cooperative pool
/// (one check costs about a quarter of a second of CPU at cost 12, on purpose).
public struct Passwords: Sendable {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case noSuchUser(String)
        case tooShort(Int)
        case tooLong(Int)

        public var description: String {
            switch self {
            case .noSuchUser(let email): "no user with email \(email)"
            case .tooShort(let minimum): "the password is too short (at least \(minimum) characters)"
            case .tooLong(let maximum): "the password is too long (at most \(maximum) bytes: bcrypt reads no further)"
            }
        }
    }

    public static let minimumCharacters = 8
    /// bcrypt ignores everything past 72 bytes; longer passwords are refused rather than cut.
    public static let maximumBytes = 72

    let credentials: any CredentialStore
    let cost: UInt8
    /// Where the user's sign-in sessions are ended when the password changes.
    let redis: RedisClient?

    public init(stores: Stores, cost: UInt8 = 12, redis: RedisClient? = nil) {
        credentials = stores.credentials
        self.cost = cost
        self.redis = redis
    }

    /// Why `password` cannot be used, or nil.
    public static func problem(_ password: String) -> Failure? {
        if password.count < minimumCharacters { return .tooShort(minimumCharacters) }
        if password.utf8.count > maximumBytes { return .tooLong(maximumBytes) }
        return nil
    }

    /// Sets `email`'s password; every sign-in session of the user ends.
    public func setPassword(email: String, password: String) async throws {
        if let problem = Self.problem(password) { throw problem }
        let email = email.trimmingCharacters(in: .whitespaces).lowercased()
        guard let (user, _) = try await credentials.credentials(email: email) else { throw Failure.noSuchUser(email) }
        let hash = try await Self.hash(password, cost: cost)
        guard try await credentials.setPasswordHash(userID: user.id, hash: hash) else { throw Failure.noSuchUser(email) }
        if let redis { try await WebSessions(redis: redis, settings: WebSettings()).endAll(userID: user.id) }
    }

    /// The user whose email and password these are, or nil. Unknown users and users without a
    /// password cost a bcrypt check too, so the answer's timing does not tell which emails exist.
    func verify(email: String, password: String) async throws -> User? {
        let email = email.trimmingCharacters(in: .whitespaces).lowercased()
        let found = try await credentials.credentials(email: email)
        let stored = found?.passwordHash
        let cost = self.cost
        let matches = try await NIOThreadPool.singleton.runIfActive {
            Bcrypt.verify(String(decoding: password.utf8.prefix(Self.maximumBytes), as: UTF8.self), hash: stored ?? Self.decoyHash(cost: cost))
        }
        guard matches, stored != nil, password.utf8.count <= Self.maximumBytes, let user = found?.user else { return nil }
        return user
    }

    /// Hashes of no password anyone knows (one per cost), checked when there is no real one.
    private static let decoys = Mutex<[UInt8: String]>([:])

    static func decoyHash(cost: UInt8) -> String {
        if let hash = decoys.withLock({ $0[cost] }) { return hash }
        let hash = Bcrypt.hash(APIKeySecret.generate(), cost: cost)
        decoys.withLock { $0[cost] = hash }
        return hash
    }

    static func hash(_ password: String, cost: UInt8) async throws -> String {
        try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(password, cost: cost) }
    }
}
