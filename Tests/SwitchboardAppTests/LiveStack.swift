import APIServer
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hummingbird
import Logging
import Queue
import RedisClient
import Storage
import Synchronization
import TestSupport
import Testing

/// A throw-away `switchboard_test_<random>` database, a random Redis key prefix, and an api node
/// on a free port over both: what the end-to-end tests run turns through. Everything is removed
/// when `body` ends, however it ends.
struct LiveStack: Sendable {
    let redis: RedisClient
    let stores: Stores
    let databaseURL: String
    let keyPrefix: String
    let port: Int
    let apiKey: String

    static var logger: Logger {
        var logger = Logger(label: "switchboard-app-tests")
        logger.logLevel = .warning
        return logger
    }

    static func with<T: Sendable>(_ body: (LiveStack) async throws -> T) async throws -> T {
        let prefix = TestRedis.randomPrefix()
        // A stuck Redis call fails the test instead of hanging it past every deadline.
        let redis = try TestRedis.client(prefix: prefix, logger: logger) { $0.commandTimeout = .seconds(10) }
        let result: Result<T, any Error>
        do {
            result = try await ThrowawayDatabase.with(logger: logger) { database, name in
                let databaseURL = try Self.url(TestServices.databaseURL, database: name)
                let stores = Stores(database: database)
                let accounts = Accounts(stores: stores)
                let email = "e2e\(UInt32.random(in: 0...UInt32.max))@example.com"
                _ = try await accounts.createUser(email: email)
                let key = try await accounts.createAPIKey(userEmail: email).secret
                let dependencies = APIDependencies(redis: redis, stores: stores, jobs: JobQueue(client: redis, logger: logger), limits: .disabled)
                return await capture {
                    try await Self.serving(dependencies) { port in
                        try await body(LiveStack(
                            redis: redis, stores: stores, databaseURL: databaseURL, keyPrefix: prefix, port: port, apiKey: key))
                    }
                }
            }
        } catch {
            result = .failure(error)
        }
        await TestRedis.discard(redis)
        return try result.get()
    }

    static func serving<T>(_ dependencies: APIDependencies, _ body: (Int) async throws -> T) async throws -> T {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = APIApplication.build(host: "127.0.0.1", port: 0, dependencies: dependencies, logger: logger) { channel in
            continuation.yield(channel.localAddress?.port ?? 0)
            continuation.finish()
        }
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            task.cancel()
            throw StackError("the api did not start")
        }
        let result = await capture { try await body(port) }
        task.cancel()
        _ = await task.result
        return try result.get()
    }

    /// `url` with its database path replaced.
    static func url(_ url: String, database: String) throws -> String {
        guard var components = URLComponents(string: url) else { throw StackError("bad database URL \(url)") }
        components.path = "/" + database
        return components.string ?? url
    }

    // MARK: HTTP

    func request(_ method: String, _ path: String, json: [String: Any]? = nil, timeout: TimeInterval = 60) -> URLRequest {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        request.timeoutInterval = timeout
        request.setValue("Bearer \(apiKey)", forHTTPHeaderField: "Authorization")
        if let json {
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = try? JSONSerialization.data(withJSONObject: json)
        }
        return request
    }

    /// A JSON request, answered within a minute (a stall of a busy CI machine is not a failure).
    func json(_ method: String, _ path: String, body: [String: Any]? = nil) async throws -> (status: Int, json: [String: Any]) {
        let (data, response) = try await URLSession.shared.data(for: request(method, path, json: body))
        let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, object)
    }

    /// Posts a message to a new chat; answers its id.
    func post(_ content: String) async throws -> (messageID: Int64, chatID: Int64) {
        let (status, json) = try await self.json("POST", "/api/v1/messages", body: ["content": content])
        guard status == 202, let id = (json["messageId"] as? NSNumber)?.int64Value, let chat = (json["chatId"] as? NSNumber)?.int64Value else {
            throw StackError("POST /api/v1/messages answered \(status): \(json)")
        }
        return (id, chat)
    }

    /// Opens `GET /api/v1/messages/{id}/events` now and collects the stream until it ends.
    func openEvents(_ messageID: Int64) -> EventStreamCollector {
        EventStreamCollector(request: request("GET", "/api/v1/messages/\(messageID)/events", timeout: 120))
    }
}

struct StackError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The outcome of `body`, thrown or returned, so cleanup can run before it is rethrown.
func capture<T>(_ body: () async throws -> T) async -> Result<T, any Error> {
    do { return .success(try await body()) } catch { return .failure(error) }
}

/// One SSE frame as a client parses it.
struct SSEEvent: Sendable, Equatable {
    var id: String?
    var type: String
    var data: String

    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any] ?? [:] }

    /// Parses a whole event-stream body (comments and `retry:` lines are skipped).
    static func parse(_ text: String) -> [SSEEvent] {
        var events: [SSEEvent] = []
        for block in text.components(separatedBy: "\n\n") {
            var id: String?
            var type: String?
            var data: [String] = []
            for line in block.split(separator: "\n", omittingEmptySubsequences: true) {
                if line.hasPrefix("id: ") { id = String(line.dropFirst(4)) }
                else if line.hasPrefix("event: ") { type = String(line.dropFirst(7)) }
                else if line.hasPrefix("data: ") { data.append(String(line.dropFirst(6))) }
            }
            if let type { events.append(SSEEvent(id: id, type: type, data: data.joined(separator: "\n"))) }
        }
        return events
    }
}

/// Reads an SSE response to its end in the background; `events(within:)` waits for it with a
/// deadline and never longer (a stuck stream is a test failure, not a hung test run).
final class EventStreamCollector: Sendable {
    private final class Box: Sendable {
        let outcome = Mutex<Result<String, any Error>?>(nil)
    }
    private let box = Box()
    private let task: Task<Void, Never>

    init(request: URLRequest) {
        let box = self.box
        task = Task {
            let result = await capture {
                let (data, response) = try await URLSession.shared.data(for: request)
                let status = (response as? HTTPURLResponse)?.statusCode ?? 0
                guard status == 200 else { throw StackError("events answered \(status)") }
                return String(decoding: data, as: UTF8.self)
            }
            box.outcome.withLock { $0 = result }
        }
    }

    func events(within timeout: Duration) async throws -> [SSEEvent] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let result = box.outcome.withLock({ $0 }) { return SSEEvent.parse(try result.get()) }
            try await Task.sleep(for: .milliseconds(100))
        }
        task.cancel()
        throw StackError("the event stream did not end within \(timeout)")
    }

    func cancel() { task.cancel() }
}
