import Foundation
import Storage
import SwitchboardCore

/// `switchboard-bench storage --url URL --rows N --connections C`
///
/// Single-row autocommit INSERT throughput through the store (`MessageStore.insertMessage`, one
/// prepared statement execution per row), with C concurrent writers over a pool of C connections.
/// `switchboard-bench storage --mode vectors --rows N --dim D`
///
/// `ChunkStore.nearestChunks` latency over N chunks of one owner (owner filter in SQL, cosine
/// ranking in process).
///
/// Both apply the migrations to the target database first and delete their rows at the end.
enum StorageBench {
    struct Options {
        var url = ProcessInfo.processInfo.environment["SB_DATABASE_URL"]
            ?? "mariadb://switchboard:switchboard@127.0.0.1:3307/switchboard"
        var rows = 10_000
        var connections = 1
        var mode = "insert"
        var dimension = 384
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
            case "--mode":
                guard value == "insert" || value == "vectors" else { throw UsageError(description: "--mode is insert or vectors") }
                options.mode = value
            case "--dim":
                guard let n = Int(value), (1...16_384).contains(n) else { throw UsageError(description: "--dim must be in 1...16384") }
                options.dimension = n
            default:
                throw UsageError(description: "unknown option \(argument) (use --url, --rows, --connections, --mode, --dim)")
            }
        }
        return options
    }

    static func run(_ arguments: [String]) async throws {
        let options = try parse(arguments)
        if options.mode == "vectors" { return try await runVectors(options) }
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

    static func runVectors(_ options: Options) async throws {
        var configuration = try DatabaseConfiguration(url: options.url)
        configuration.poolSize = max(options.connections, 2)
        let database = try await Database.connect(configuration)
        do {
            try await Migrator(database: database).migrate()
            let stores = Stores(database: database)
            let user = try await stores.users.createUser(
                email: "bench-\(UUID().uuidString.lowercased())@example.com", name: "bench", role: .user)
            let file = try await stores.files.createFile(
                NewFile(ownerID: user.id, name: "bench.txt", mimeType: "text/plain", size: 0, sha256: String(repeating: "0", count: 64),
                        storagePath: "bench"))
            var generator = SystemRandomNumberGenerator()
            func randomVector() -> [Float] { (0..<options.dimension).map { _ in Float.random(in: -1...1, using: &generator) } }
            var ordinal = 0
            while ordinal < options.rows {
                let batch = (ordinal..<min(ordinal + 500, options.rows)).map {
                    NewChunk(ordinal: $0, text: "chunk \($0) with a sentence or two of text to carry along", embedding: randomVector())
                }
                _ = try await stores.chunks.insertChunks(fileID: file.id, ownerID: user.id, chunks: batch)
                ordinal += batch.count
            }
            let clock = ContinuousClock()
            var milliseconds: [Double] = []
            for round in 0..<23 {
                let query = randomVector()
                let start = clock.now
                let found = try await stores.chunks.nearestChunks(ownerID: user.id, query: query, limit: 10)
                let elapsed = start.duration(to: clock.now)
                guard found.count == min(10, options.rows) else { throw UsageError(description: "expected 10 results, got \(found.count)") }
                if round >= 3 {  // the first rounds warm the buffer pool
                    milliseconds.append(Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
                }
            }
            milliseconds.sort()
            let p50 = milliseconds[milliseconds.count / 2]
            let p95 = milliseconds[Int(Double(milliseconds.count - 1) * 0.95)]
            print(
                "storage vectors chunks=\(options.rows) dim=\(options.dimension) queries=\(milliseconds.count) "
                    + "p50_ms=\(String(format: "%.1f", p50)) p95_ms=\(String(format: "%.1f", p95))")
            _ = try await stores.users.deleteUser(id: user.id)
        } catch {
            await database.shutdown()
            throw error
        }
        await database.shutdown()
    }
}
