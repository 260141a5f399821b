import Foundation
import Storage
import SwitchboardCore
import TestSupport
import Testing

@Suite("Database (real MariaDB)")
struct DatabaseTests {
    @Test func migratesAnEmptyDatabaseAndRerunsAsANoOp() async throws {
        try await TestDatabase.with(migrate: false) { db, _ in
            let first = try await Migrator(database: db).migrate()
            #expect(first.applied == Schema.migrations.map(\.version))
            #expect(first.version == Schema.migrations.last?.version)

            let tables = try await db.query(
                "SELECT table_name AS name, table_collation AS collation FROM information_schema.tables WHERE table_schema = DATABASE()")
            let names = Set(try tables.map { try $0.string("name") })
            #expect(names == [
                "schema_migrations", "users", "api_keys", "chats", "messages", "message_tasks", "files", "chunks", "widgets",
                "widget_sessions", "topics", "routing_rules", "usage", "channel_connections", "webhook_requests", "webhook_secrets",
                "user_quotas", "widget_operators", "widget_session_events", "message_sources", "email_messages",
            ])
            #expect(try tables.allSatisfy { try $0.string("collation") == "utf8mb4_unicode_ci" })

            let again = try await Migrator(database: db).migrate()
            #expect(again.applied == [])
            #expect(again.version == first.version)
            #expect(try await db.query("SELECT version FROM schema_migrations").count == Schema.migrations.count)
        }
    }

    @Test func concurrentMigratorsApplyEachVersionOnce() async throws {
        try await TestDatabase.with(migrate: false) { db, _ in
            let reports = try await withThrowingTaskGroup(of: Migrator.Report.self) { group in
                for _ in 0..<4 { group.addTask { try await Migrator(database: db).migrate() } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(reports.flatMap(\.applied).sorted() == Schema.migrations.map(\.version))
            #expect(Set(reports.map(\.version)).count == 1)
        }
    }

    @Test(arguments: [false, true])
    func theChatOwnershipMigrationKeepsMessagesAndStopsSafelyOnAStrayOne(withStrayMessage: Bool) async throws {
        try await TestDatabase.with(migrate: false) { db, _ in
            let before = Schema.migrations.filter { $0.version < 4 }
            _ = try await Migrator(database: db, migrations: before).migrate()
            let stores = Stores(database: db)
            let ada = try await stores.users.createUser(email: "ada@example.com", name: "", role: .user)
            let bob = try await stores.users.createUser(email: "bob@example.com", name: "", role: .user)
            let chat = try await stores.chats.createChat(ownerID: ada.id, title: "t", channel: .web, externalThreadKey: nil)
            _ = try await stores.messages.insertMessage(NewMessage(chatID: chat.id, ownerID: ada.id, content: "kept"))
            if withStrayMessage {
                // Version 3 accepted a message whose user is not the chat's owner.
                _ = try await stores.messages.insertMessage(NewMessage(chatID: chat.id, ownerID: bob.id, content: "stray"))
            }
            func foreignKeys() async throws -> Set<String> {
                Set(try await db.query(
                    "SELECT CONSTRAINT_NAME AS name FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = 'messages'"
                ).map { try $0.string("name") })
            }
            if withStrayMessage {
                await #expect(throws: DatabaseError.self) { _ = try await Migrator(database: db).migrate() }
                #expect(try await foreignKeys().contains("messages_chat_fk"), "the old key stays when the new one cannot be added")
                #expect(try await db.queryFirst("SELECT MAX(version) AS v FROM schema_migrations")?.int("v") == 3)
            } else {
                #expect(try await Migrator(database: db).migrate().applied == Schema.migrations.map(\.version).filter { $0 > 3 }.sorted())
                #expect(try await foreignKeys() == ["messages_chat_owner_fk", "messages_reply_to_fk", "messages_user_fk"])
                #expect(try await stores.messages.messages(chatID: chat.id, ownerID: ada.id, limit: 10, beforeID: nil, afterID: nil).map(\.content) == ["kept"])
            }
        }
    }

    @Test func foreignKeysCascadeFromTheOwner() async throws {
        try await TestDatabase.with { db, stores in
            let user = try await stores.users.createUser(email: "cascade@example.com", name: "C", role: .user)
            let chat = try await stores.chats.createChat(ownerID: user.id, title: "t", channel: .web, externalThreadKey: nil)
            _ = try await stores.messages.insertMessage(NewMessage(chatID: chat.id, ownerID: user.id, content: "hi"))
            #expect(try await stores.users.deleteUser(id: user.id))
            #expect(try await db.queryFirst("SELECT COUNT(*) AS n FROM messages")?.int("n") == 0)
            #expect(try await db.queryFirst("SELECT COUNT(*) AS n FROM chats")?.int("n") == 0)
        }
    }

    @Test func typedValuesRoundTrip() async throws {
        try await TestDatabase.with(migrate: false) { db, _ in
            let date = Date(timeIntervalSince1970: 1_790_000_000.123456)
            let blob = Data((0...255).map { UInt8($0) })
            let row = try #require(
                try await db.queryFirst(
                    "SELECT ? AS i, ? AS d, ? AS s, ? AS b, CAST(? AS DATETIME(6)) AS t, ? AS n",
                    [.int(-9_007_199_254_740_993), .double(3.25), .string("plain"), .blob(blob), .date(date), .null]))
            #expect(try row.int("i") == -9_007_199_254_740_993)
            #expect(try row.double("d") == 3.25)
            #expect(try row.string("s") == "plain")
            #expect(try row.data("b") == blob)
            #expect(try row.date("t") == date.roundedToMicroseconds())
            #expect(row["n"].isNull)
            #expect(try row.optionalString("n") == nil)
            #expect(throws: DatabaseError.self) { try row.int("missing") }
            #expect(throws: DatabaseError.self) { try row.int("s") }
        }
    }

    @Test func largeValuesOfUnknownSizeAreReadWhole() async throws {
        try await TestDatabase.with { _, stores in
            let user = try await stores.users.createUser(email: "big@example.com", name: "B", role: .user)
            let chat = try await stores.chats.createChat(ownerID: user.id, title: "", channel: .web, externalThreadKey: nil)
            let small = try await stores.messages.insertMessage(NewMessage(chatID: chat.id, ownerID: user.id, content: "x"))
            let bigText = String(repeating: "0123456789abcdef", count: 200_000)  // 3.2 MB
            let big = try await stores.messages.insertMessage(NewMessage(chatID: chat.id, ownerID: user.id, content: bigText))
            let page = try await stores.messages.messages(chatID: chat.id, ownerID: user.id, limit: 10, beforeID: nil, afterID: nil)
            #expect(page.map(\.id) == [big.id, small.id])
            #expect(page[0].content == bigText)
            #expect(page[1].content == "x")
        }
    }

    @Test func emojiAndFourByteUTF8RoundTrip() async throws {
        try await TestDatabase.with { db, stores in
            let text = "Grüße 👋🏽 𝄞 中文 🇩🇪 — 🧑‍💻"
            let user = try await stores.users.createUser(email: "emoji@example.com", name: "😀 Ünïcode", role: .user)
            let chat = try await stores.chats.createChat(ownerID: user.id, title: "💬 \(text)", channel: .web, externalThreadKey: nil)
            let message = try await stores.messages.insertMessage(NewMessage(chatID: chat.id, ownerID: user.id, content: text))
            #expect(try await stores.messages.message(id: message.id, ownerID: user.id)?.content == text)
            #expect(try await stores.users.user(id: user.id)?.name == "😀 Ünïcode")
            #expect(try await stores.chats.chat(id: chat.id, ownerID: user.id)?.title == "💬 \(text)")
            // The server holds real 4-byte characters, not replacement marks.
            let row = try #require(try await db.queryFirst("SELECT CHAR_LENGTH(content) AS c, HEX(content) AS h FROM messages WHERE id = ?", [.int(message.id)]))
            #expect(try row.int("c") == Int64(text.unicodeScalars.count))
            #expect(try row.string("h").contains("F09F918B"))  // U+1F44B WAVING HAND
        }
    }

    @Test func vectorOf384FloatsRoundTripsBitExact() async throws {
        try await TestDatabase.with { _, stores in
            let user = try await stores.users.createUser(email: "vec@example.com", name: "", role: .user)
            let file = try await stores.files.createFile(
                NewFile(ownerID: user.id, name: "a.txt", mimeType: "text/plain", size: 3, sha256: String(repeating: "a", count: 64), storagePath: "/tmp/a"))
            var generator = SystemRandomNumberGenerator()
            var vector = (0..<384).map { _ in Float(bitPattern: UInt32.random(in: 0..<0x7F80_0000, using: &generator)) * (Bool.random() ? 1 : -1) }
            vector[0] = .leastNonzeroMagnitude
            vector[1] = -0.0
            vector[2] = .greatestFiniteMagnitude
            _ = try await stores.chunks.insertChunks(fileID: file.id, ownerID: user.id, chunks: [NewChunk(ordinal: 0, text: "t", embedding: vector)])
            let stored = try #require(try await stores.chunks.chunks(fileID: file.id, ownerID: user.id).first)
            #expect(stored.dimension == 384)
            #expect(stored.embedding.map(\.bitPattern) == vector.map(\.bitPattern))
        }
    }

    @Test func transactionRollsBackWhenTheBodyThrows() async throws {
        struct Boom: Error {}
        try await TestDatabase.with { db, stores in
            let user = try await stores.users.createUser(email: "tx@example.com", name: "", role: .user)
            await #expect(throws: Boom.self) {
                try await db.transaction { tx in
                    try await tx.execute(
                        "INSERT INTO chats (user_id, title, channel, created_at, updated_at) VALUES (?, 'doomed', 'web', ?, ?)",
                        [.int(user.id), .date(.databaseNow()), .date(.databaseNow())])
                    #expect(try await tx.queryFirst("SELECT COUNT(*) AS n FROM chats")?.int("n") == 1)
                    throw Boom()
                }
            }
            #expect(try await db.queryFirst("SELECT COUNT(*) AS n FROM chats")?.int("n") == 0)

            let committed = try await db.transaction { tx in
                try await tx.execute(
                    "INSERT INTO chats (user_id, title, channel, created_at, updated_at) VALUES (?, 'kept', 'web', ?, ?)",
                    [.int(user.id), .date(.databaseNow()), .date(.databaseNow())]).lastInsertID
            }
            #expect(try await stores.chats.chat(id: committed, ownerID: user.id)?.title == "kept")
        }
    }

    /// Two transactions lock two rows in opposite orders. InnoDB rolls one back as the deadlock's
    /// victim; that one runs again, so both commit, each once.
    @Test func aTransactionPickedAsADeadlocksVictimRunsAgain() async throws {
        actor Rendezvous {
            private var arrived = 0
            private var attempts = 0
            func arrive() { arrived += 1 }
            var everyoneArrived: Bool { arrived >= 2 }
            func attempt() -> Int { attempts += 1; return attempts }
        }
        try await TestDatabase.with(migrate: false) { db, _ in
            try await db.execute("CREATE TABLE counters (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB")
            try await db.execute("INSERT INTO counters VALUES (1, 0), (2, 0)")
            let rendezvous = Rendezvous()
            let firstAttempts = Rendezvous()
            func bump(_ first: Int, then second: Int) async throws {
                try await db.transaction { tx in
                    let attempt = await rendezvous.attempt()
                    try await tx.execute("UPDATE counters SET n = n + 1 WHERE id = ?", [.int(Int64(first))])
                    if attempt <= 2 {
                        // Each first run holds its first row until the other holds its own.
                        _ = await firstAttempts.attempt()
                        await firstAttempts.arrive()
                        while !(await firstAttempts.everyoneArrived) { try await Task.sleep(for: .milliseconds(5)) }
                    }
                    try await tx.execute("UPDATE counters SET n = n + 1 WHERE id = ?", [.int(Int64(second))])
                }
            }
            async let one: Void = bump(1, then: 2)
            async let two: Void = bump(2, then: 1)
            _ = try await (one, two)
            #expect(try await db.query("SELECT n FROM counters ORDER BY id").map { try $0.int("n") } == [2, 2])
            #expect(await rendezvous.attempt() == 4, "two first runs and one rerun before this count")
        }
    }

    @Test func deadlocksAndLockWaitTimeoutsAreTypedErrors() async throws {
        try await TestDatabase.with(migrate: false) { db, _ in
            try await db.execute("CREATE TABLE rows_held (id INT PRIMARY KEY) ENGINE=InnoDB")
            try await db.execute("INSERT INTO rows_held VALUES (1)")
            let error = await #expect(throws: DatabaseError.self) {
                try await db.transaction { holder in
                    try await holder.execute("SELECT id FROM rows_held WHERE id = 1 FOR UPDATE")
                    try await db.withSession { waiter in
                        try await waiter.execute("SET SESSION innodb_lock_wait_timeout = 1")
                        try await waiter.execute("SELECT id FROM rows_held WHERE id = 1 FOR UPDATE")
                    }
                }
            }
            #expect(error?.code == .lockWaitTimeout)
            #expect(error?.errorNumber == 1205)
        }
    }

    @Test func duplicateChannelMessageIsATypedDuplicateError() async throws {
        try await TestDatabase.with { _, stores in
            let user = try await stores.users.createUser(email: "dup@example.com", name: "", role: .user)
            let chat = try await stores.chats.createChat(ownerID: user.id, title: "", channel: .whatsapp, externalThreadKey: "+4911")
            let first = NewMessage(chatID: chat.id, ownerID: user.id, content: "hi", channel: .whatsapp, externalID: "wamid.ABC")
            _ = try await stores.messages.insertMessage(first)
            let error = await #expect(throws: DatabaseError.self) { try await stores.messages.insertMessage(first) }
            #expect(error?.code == .duplicateKey)
            #expect(error?.isDuplicateKey == true)
            #expect(error?.errorNumber == 1062)
            #expect(error?.sqlState == "23000")
            // Same external id on another channel is a different message.
            var email = first
            email.channel = .email
            _ = try await stores.messages.insertMessage(email)
        }
    }

    @Test func hundredConcurrentInsertsAreAllStored() async throws {
        try await TestDatabase.with(poolSize: 8) { db, stores in
            let user = try await stores.users.createUser(email: "many@example.com", name: "", role: .user)
            let chat = try await stores.chats.createChat(ownerID: user.id, title: "", channel: .web, externalThreadKey: nil)
            let ids = try await withThrowingTaskGroup(of: Int64.self) { group in
                for i in 0..<100 {
                    group.addTask {
                        try await stores.messages.insertMessage(NewMessage(chatID: chat.id, ownerID: user.id, content: "message \(i)")).id
                    }
                }
                return try await group.reduce(into: Set<Int64>()) { $0.insert($1) }
            }
            #expect(ids.count == 100)
            let contents = try await db.query("SELECT content FROM messages WHERE chat_id = ?", [.int(chat.id)]).map { try $0.string("content") }
            #expect(Set(contents) == Set((0..<100).map { "message \($0)" }))
            #expect(db.openConnections <= 8)
        }
    }

    @Test func killedConnectionIsReplacedTransparently() async throws {
        try await TestDatabase.with(poolSize: 1) { db, stores in
            let before = try #require(try await db.queryFirst("SELECT CONNECTION_ID() AS id")?.int("id"))
            let user = try await stores.users.createUser(email: "kill@example.com", name: "", role: .user)

            var configuration = try TestDatabase.baseConfiguration
            configuration.poolSize = 1
            let killer = try await Database.connect(configuration)
            try await killer.withSession { try await $0.executeText("KILL \(before)") }
            await killer.shutdown()

            // Both a cached prepared statement and a fresh one go through without an error.
            #expect(try await stores.users.user(id: user.id)?.email == "kill@example.com")
            let after = try #require(try await db.queryFirst("SELECT CONNECTION_ID() AS id")?.int("id"))
            #expect(after != before)
            #expect(db.openConnections == 1)
        }
    }

    @Test func healthCheckReplacesAConnectionKilledWhileIdle() async throws {
        try await TestDatabase.with(poolSize: 1, migrate: false) { db, _ in
            var configuration = db.configuration
            configuration.healthCheckAfterIdle = .zero  // ping before every lease
            let checked = try await Database.connect(configuration)
            let before = try await checked.withSession { $0.serverConnectionID }
            try await db.withSession { try await $0.executeText("KILL \(before)") }
            // A session is never retried; it works only because the dead connection was found before the lease.
            let after = try await checked.withSession { session in
                try await session.queryFirst("SELECT CONNECTION_ID() AS id")?.int("id")
            }
            #expect(after != nil && after != before)
            await checked.shutdown()
        }
    }

    @Test func killedConnectionInsideATransactionFailsWithoutRetry() async throws {
        try await TestDatabase.with(poolSize: 2) { db, _ in
            let error = await #expect(throws: DatabaseError.self) {
                try await db.transaction { tx in
                    try await db.withSession { try await $0.executeText("KILL \(tx.serverConnectionID)") }
                    _ = try await tx.query("SELECT 1")
                }
            }
            #expect(error?.isConnectionLost == true)
            let one = try await db.queryFirst("SELECT 1 AS one")?.int("one")
            #expect(one == 1)
        }
    }

    @Test func waitingForAConnectionTimesOut() async throws {
        try await TestDatabase.with(poolSize: 1, migrate: false) { db, _ in
            var configuration = db.configuration
            configuration.acquireTimeout = .milliseconds(200)
            let small = try await Database.connect(configuration)
            let error = await #expect(throws: DatabaseError.self) {
                try await small.withSession { _ in try await small.query("SELECT 1") }
            }
            #expect(error?.code == .poolTimeout)
            await small.shutdown()
        }
    }

    @Test func connectsOverTheUnixSocket() async throws {
        var configuration = try TestDatabase.baseConfiguration
        configuration.socketPath = TestServices.mariadbSocket
        configuration.poolSize = 1
        let overSocket = try await Database.connect(configuration)
        // The server sees a socket client as coming from `localhost`, a TCP one as `127.0.0.1:port`.
        let host = try await overSocket.queryFirst(
            "SELECT host FROM information_schema.processlist WHERE id = CONNECTION_ID()")?.string("host")
        #expect(host == "localhost")
        await overSocket.shutdown()

        configuration.socketPath = "/nonexistent/mysqld.sock"
        let missing = await #expect(throws: DatabaseError.self) { try await Database.connect(configuration) }
        #expect(missing?.code == .connectFailed)
        #expect(missing?.message.contains("/nonexistent/mysqld.sock") == true)
    }

    @Test func connectFailsFastWithATypedError() async throws {
        var wrongPassword = try TestDatabase.baseConfiguration
        wrongPassword.password = "definitely-not-the-password"
        let denied = await #expect(throws: DatabaseError.self) { try await Database.connect(wrongPassword) }
        #expect(denied?.code == .connectFailed)
        #expect(denied?.errorNumber == 1045)  // ER_ACCESS_DENIED_ERROR

        var nobodyListening = try TestDatabase.baseConfiguration
        nobodyListening.port = 1
        let refused = await #expect(throws: DatabaseError.self) { try await Database.connect(nobodyListening) }
        #expect(refused?.code == .connectFailed)
        #expect(refused?.errorNumber == 2002)  // CR_CONNECTION_ERROR
    }

    @Test func statementErrorsCarryNumberAndState() async throws {
        try await TestDatabase.with(migrate: false) { db, _ in
            let error = await #expect(throws: DatabaseError.self) { try await db.query("SELECT * FROM no_such_table") }
            #expect(error?.errorNumber == 1146)
            #expect(error?.sqlState == "42S02")
            // The connection is still good.
            let two = try await db.queryFirst("SELECT 2 AS two")?.int("two")
            #expect(two == 2)
            await #expect(throws: DatabaseError.self) { try await db.query("SELECT ?", []) }
        }
    }
}
