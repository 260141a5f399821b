import Channels
import Files
import Foundation
import Logging
import Mail
import Queue
import RedisClient
import Storage
import SwitchboardCore

/// `switchboard-bench email --db URL --redis URL --mails N --concurrency C`
///
/// Inbound email throughput from a corpus of N generated, varied mails (plain, alternative,
/// HTML-only, quoted-printable Windows-1252, base64 ISO-8859-1, attachments, nested multiparts,
/// replies that thread, auto-replies): MIME parsing alone, then parse + thread + store + queue
/// through `EmailReceiver` (MariaDB and Redis), beside the ingest of the same number of plain JSON
/// webhook messages (decode + `ChannelIntake.accept`, the WhatsApp path) in the same run, on the
/// same servers, at the same concurrency.
enum EmailBench {
    struct Options {
        var database = ProcessInfo.processInfo.environment["SB_DATABASE_URL"] ?? "mariadb://switchboard:switchboard@127.0.0.1:3307/switchboard"
        var redis = ProcessInfo.processInfo.environment["SB_REDIS_URL"] ?? "redis://127.0.0.1:6380/0"
        var mails = 2_000
        var concurrency = 8
    }

    static func run(_ arguments: [String]) async throws {
        var options = Options()
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            guard let value = iterator.next() else { throw BenchUsage("\(argument) needs a value") }
            switch argument {
            case "--db": options.database = value
            case "--redis": options.redis = value
            case "--mails": options.mails = max(1, Int(value) ?? 2_000)
            case "--concurrency": options.concurrency = max(1, Int(value) ?? 8)
            default: throw BenchUsage("unknown option \(argument) (use --db, --redis, --mails, --concurrency)")
            }
        }
        let logger = {
            var logger = Logger(label: "bench.email")
            logger.logLevel = .error
            return logger
        }()
        let corpus = (0..<options.mails).map { MailCorpus.mail($0) }
        let bytes = corpus.reduce(0) { $0 + $1.count }
        print("corpus: \(corpus.count) mails, \(String(format: "%.1f", Double(bytes) / 1_048_576)) MiB, concurrency \(options.concurrency)")

        // 1. Parsing alone (one core).
        let parseStart = ContinuousClock.now
        var parsed: [ParsedMail] = []
        parsed.reserveCapacity(corpus.count)
        for raw in corpus { parsed.append(MIMEParser.parse(raw)) }
        let parseSeconds = seconds(since: parseStart)
        let warnings = parsed.filter { !$0.warnings.isEmpty }.count
        print(String(format: "parse only:            %8.0f mails/s  (%.1f MiB/s, %d with warnings)", Double(corpus.count) / parseSeconds,
                     Double(bytes) / 1_048_576 / parseSeconds, warnings))

        var redisConfiguration = try RedisConfiguration(url: options.redis)
        redisConfiguration.keyPrefix = "sbbench:email:\(UInt32.random(in: 0...UInt32.max)):"
        let redis = RedisClient(configuration: redisConfiguration, logger: logger)
        try await BenchDatabase.with(url: options.database, poolSize: options.concurrency, label: "email", logger: logger) { stores in
            let owner = try await stores.users.createUser(email: "bench-email@example.com", name: "", role: .user)
            let connection = try await stores.connections.createConnection(NewChannelConnection(
                ownerID: owner.id, type: EmailConnection.type, name: "bench", publicID: "ch_bench\(UInt32.random(in: 0...UInt32.max))",
                settings: ["address": "support@shop.example"], sealedSecrets: try SecretBox.development().seal([:])))
            let email = try EmailConnection(connection, secrets: .development())
            let intake = ChannelIntake(stores: stores, jobs: JobQueue(client: redis, logger: logger), redis: redis)
            let directory = NSTemporaryDirectory() + "sb-bench-email-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let files = FileIntake(
                stores: stores, jobs: JobQueue(client: redis, logger: logger), configuration: FilesConfiguration(storageDirectory: directory))
            let receiver = EmailReceiver(
                stores: stores, intake: intake, redis: redis, attachments: EmailAttachmentStore(intake: files, maxBytes: 20 << 20))

            // 2. Plain JSON webhook ingest (the baseline): decode, then the intake.
            let jsonBodies = (0..<corpus.count).map { index in
                Array(#"{"from":"1555\#(index % 97)","id":"wamid.BENCH\#(index)","type":"text","text":{"body":"Where is my order \#(index)?"}}"#.utf8)
            }
            let jsonStart = ContinuousClock.now
            try await inParallel(jsonBodies.count, concurrency: options.concurrency) { index in
                let message = try JSONDecoder().decode(PlainMessage.self, from: Data(jsonBodies[index]))
                _ = try await intake.accept(InboundMessage(
                    ownerID: owner.id, channel: .whatsapp, content: message.text.body,
                    chat: .thread(key: "wa:0:\(message.from)", title: message.from), externalID: message.id), logger: logger)
            }
            let jsonSeconds = seconds(since: jsonStart)
            let jsonRate = Double(jsonBodies.count) / jsonSeconds
            print(String(format: "plain JSON ingest:     %8.0f msgs/s", jsonRate))

            // 3. Email: parse, thread, store (with attachments and the email record), queue.
            let mailStart = ContinuousClock.now
            try await inParallel(corpus.count, concurrency: options.concurrency) { index in
                _ = try await receiver.receive(ReceivedMail(mail: MIMEParser.parse(corpus[index])), connection: email, logger: logger)
            }
            let mailSeconds = seconds(since: mailStart)
            let mailRate = Double(corpus.count) / mailSeconds
            print(String(format: "email parse + store:   %8.0f mails/s  (%.2f × plain JSON)", mailRate, mailRate / jsonRate))
            let chats = try await stores.chats.chats(ownerID: owner.id, limit: 100_000, beforeID: nil).count
            print("chats after both runs: \(chats)")
        }
        if let keys = try? await redis.send(RedisCommand("KEYS", redisConfiguration.keyPrefix + "*")).array {
            let names = keys.compactMap(\.bytes)
            if !names.isEmpty { _ = try? await redis.send(RedisCommand("DEL", arguments: names)) }
        }
        await redis.close()
    }

    struct PlainMessage: Decodable {
        struct Text: Decodable { var body: String }
        var from: String
        var id: String
        var text: Text
    }

    struct BenchUsage: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    /// Runs `body(0..<count)` with at most `concurrency` at once.
    static func inParallel(_ count: Int, concurrency: Int, _ body: @escaping @Sendable (Int) async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            for _ in 0..<min(concurrency, count) {
                let index = next
                next += 1
                group.addTask { try await body(index) }
            }
            while try await group.next() != nil {
                if next < count {
                    let index = next
                    next += 1
                    group.addTask { try await body(index) }
                }
            }
        }
    }
}
