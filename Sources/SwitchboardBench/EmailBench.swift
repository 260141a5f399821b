import Channels
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
        let corpus = (0..<options.mails).map { corpusMail($0) }
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
            let receiver = EmailReceiver(
                stores: stores, intake: intake, redis: redis,
                attachments: EmailAttachmentStore(files: stores.files, directory: directory, maxBytes: 20 << 20))

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

    /// Mail `index` of the corpus: one of eight shapes, from one of 50 senders; every fifth mail
    /// answers an earlier one of its sender, one in 25 is an auto-reply.
    static func corpusMail(_ index: Int) -> [UInt8] {
        let sender = index % 50
        var headers = "From: Customer \(sender) <customer\(sender)@example.com>\r\nTo: support@shop.example\r\n"
        headers += "Message-ID: <bench-\(index)@example.com>\r\nDate: Fri, 4 Dec 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        if index % 5 == 4, index >= 50 {
            headers += "In-Reply-To: <bench-\(index - 50)@example.com>\r\nReferences: <bench-\(index - 50)@example.com>\r\n"
        }
        if index % 25 == 24 { headers += "Auto-Submitted: auto-replied\r\n" }
        let line = "Order \(index): where is it? It was due on Monday and the tracking page says nothing."
        switch index % 8 {
        case 0:
            return Array((headers + "Subject: Order \(index)\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\(line)\r\n\r\nOn Thu, Shop wrote:\r\n> Thanks for your order.\r\n").utf8)
        case 1:
            return Array((headers + "Subject: =?UTF-8?B?\(Data("Bestellung \(index) – Frage".utf8).base64EncodedString())?=\r\n"
                + "Content-Type: multipart/alternative; boundary=\"alt\(index)\"\r\n\r\n--alt\(index)\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\(line)\r\n"
                + "--alt\(index)\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<div><p>\(line)</p></div>\r\n--alt\(index)--\r\n").utf8)
        case 2:
            return Array((headers + "Subject: html \(index)\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><head><style>p{}</style></head><body><p>\(line)</p><ul><li>a</li><li>b</li></ul></body></html>\r\n").utf8)
        case 3:
            return Array((headers + "Subject: =?windows-1252?Q?Preis_=80_\(index)?=\r\nContent-Type: text/plain; charset=windows-1252\r\n"
                + "Content-Transfer-Encoding: quoted-printable\r\n\r\n=93Gr=FC=DFe=94 \(line) soft=\r\nbreak =80 100\r\n").utf8)
        case 4:
            let latin1: [UInt8] = Array("Caf".utf8) + [0xE9] + Array(" cr".utf8) + [0xE8] + Array("me \(line)".utf8)
            return Array((headers + "Subject: latin1 \(index)\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                + TransferEncoding.encodeBase64Lines(latin1) + "\r\n").utf8)
        case 5:
            let attachment = (0..<2048).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ index) }
            return Array((headers + "Subject: file \(index)\r\nContent-Type: multipart/mixed; boundary=\"mix\(index)\"\r\n\r\n--mix\(index)\r\n"
                + "Content-Type: text/plain\r\n\r\n\(line)\r\n--mix\(index)\r\nContent-Type: application/pdf; name=\"scan-\(index).pdf\"\r\n"
                + "Content-Disposition: attachment; filename=\"scan-\(index).pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                + TransferEncoding.encodeBase64Lines(attachment) + "\r\n--mix\(index)--\r\n").utf8)
        case 6:
            return Array((headers + "Subject: nested \(index)\r\nContent-Type: multipart/mixed; boundary=\"o\(index)\"\r\n\r\n--o\(index)\r\n"
                + "Content-Type: multipart/related; boundary=\"r\(index)\"\r\n\r\n--r\(index)\r\nContent-Type: multipart/alternative; boundary=\"a\(index)\"\r\n\r\n"
                + "--a\(index)\r\nContent-Type: text/plain\r\n\r\n\(line)\r\n--a\(index)\r\nContent-Type: text/html\r\n\r\n<p>\(line)</p>\r\n--a\(index)--\r\n"
                + "--r\(index)\r\nContent-Type: image/png\r\nContent-ID: <logo\(index)@x>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--r\(index)--\r\n--o\(index)--\r\n").utf8)
        default:
            return Array((headers + "Subject: Re: Order \(index)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
                + TransferEncoding.encodeQuotedPrintable("\(line)\n\n________________________________\nFrom: Shop <support@shop.example>\nSent: Monday\n\nold text") + "\r\n").utf8)
        }
    }
}
