import Foundation
import Storage
import SwitchboardCore

/// `switchboard-bench storage --url URL --rows N --connections C`
///
/// Single-row autocommit INSERT throughput through the store (`MessageStore.insertMessage`, one
/// prepared statement execution per row), with C concurrent writers over a pool of C connections.
/// Applies the migrations to the target database first and leaves the rows there.
enum StorageBench {
    struct Options {
        var url = ProcessInfo.processInfo.environment["SB_DATABASE_URL"]
            ?? "mariadb://switchboard:switchboard@127.0.0.1:3307/switchboard"
        var rows = 10_000
        var connections = 1
    }

    struct UsageError: Error, CustomStringConvertible {
        let description: String
    }

    static func parse(_ arguments: [String]) throws -> Options {
        var options = Options()
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            guard let value = iterator.next() else { throw UsageError(description: "\(argument) needs a value") }
            switch argument {
            case "--url": options.url = value
            case "--rows":
                guard let n = Int(value), n > 0 else { throw UsageError(description: "--rows must be a positive integer") }
                options.rows = n
            case "--connections":
                guard let n = Int(value), (1...512).contains(n) else { throw UsageError(description: "--connections must be in 1...512") }
                options.connections = n
            default:
                throw UsageError(description: "unknown option \(argument) (use --url, --rows, --connections)")
            }
        }
        return options
    }

    static func run(_ arguments: [String]) async throws {
        let options = try parse(arguments)
        var configuration = try DatabaseConfiguration(url: options.url)
        configuration.poolSize = options.connections
        let database = try await Database.connect(configuration)
        do {
            try await Migrator(database: database).migrate()
            let stores = Stores(database: database)
            let email = "bench-\(UUID().uuidString.lowercased())@example.com"
            let user = try await stores.users.createUser(email: email, name: "bench", role: .user)
            let chat = try await stores.chats.createChat(ownerID: user.id, title: "bench", channel: .api, externalThreadKey: nil)

            // Open every connection before timing.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<options.connections { group.addTask { _ = try await database.query("SELECT 1") } }
                try await group.waitForAll()
            }

            let clock = ContinuousClock()
            let start = clock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<options.connections {
                    let share = options.rows / options.connections + (worker < options.rows % options.connections ? 1 : 0)
                    group.addTask {
                        for i in 0..<share {
                            _ = try await stores.messages.insertMessage(
                                NewMessage(chatID: chat.id, ownerID: user.id, content: "bench message \(worker)-\(i)", channel: .api))
                        }
                    }
                }
                try await group.waitForAll()
            }
            let elapsed = start.duration(to: clock.now)
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let stored = try await database.queryFirst("SELECT COUNT(*) AS n FROM messages WHERE chat_id = ?", [.int(chat.id)])?.int("n") ?? 0
            guard stored == options.rows else {
                throw UsageError(description: "expected \(options.rows) rows, found \(stored)")
            }
            print(
                "storage insert rows=\(options.rows) connections=\(options.connections) "
                    + "seconds=\(String(format: "%.3f", seconds)) rows_per_sec=\(String(format: "%.0f", Double(options.rows) / seconds))")
            _ = try await stores.users.deleteUser(id: user.id)
        } catch {
            await database.shutdown()
            throw error
        }
        await database.shutdown()
    }
}
