import Foundation
import Storage
import SwitchboardCore
import Testing

/// Create, read, update and delete through every store, and the owner scoping of every read.
@Suite("Stores (real MariaDB)")
struct StoreTests {
    @Test func usersAndAPIKeys() async throws {
        try await TestDatabase.with { _, stores in
            let user = try await stores.users.createUser(email: "ada@example.com", name: "Ada", role: .user)
            #expect(try await stores.users.user(id: user.id) == user)
            #expect(try await stores.users.user(email: "ada@example.com") == user)
            let renamed = try await stores.users.updateUser(id: user.id, name: "Ada L.", role: .admin)
            #expect(renamed?.name == "Ada L.")
            #expect(renamed?.role == .admin)
            let error = await #expect(throws: DatabaseError.self) {
                try await stores.users.createUser(email: "ada@example.com", name: "again", role: .user)
            }
            #expect(error?.isDuplicateKey == true)
            let other = try await stores.users.createUser(email: "bob@example.com", name: "Bob", role: .user)
            #expect(try await stores.users.users(limit: 10, afterID: nil).map(\.id) == [user.id, other.id])

            let hash = String(repeating: "ab", count: 32)
            let key = try await stores.apiKeys.createAPIKey(userID: user.id, name: "cli", prefix: "sk_abcd", keyHash: hash)
            let found = try #require(try await stores.apiKeys.activeAPIKey(hash: hash))
            #expect(found.key == key)
            #expect(found.user.email == "ada@example.com")
            let used = Date.databaseNow()
            try await stores.apiKeys.touchAPIKey(id: key.id, at: used)
            #expect(try await stores.apiKeys.apiKey(id: key.id, ownerID: user.id)?.lastUsedAt == used)
            #expect(try await stores.apiKeys.apiKeys(ownerID: user.id).map(\.id) == [key.id])

            // Another user can neither see nor revoke the key.
            #expect(try await stores.apiKeys.apiKey(id: key.id, ownerID: other.id) == nil)
            #expect(try await stores.apiKeys.apiKeys(ownerID: other.id).isEmpty)
            #expect(try await stores.apiKeys.revokeAPIKey(id: key.id, ownerID: other.id) == false)
            #expect(try await stores.apiKeys.deleteAPIKey(id: key.id, ownerID: other.id) == false)

            #expect(try await stores.apiKeys.revokeAPIKey(id: key.id, ownerID: user.id))
            #expect(try await stores.apiKeys.revokeAPIKey(id: key.id, ownerID: nil) == false)  // already revoked
            #expect(try await stores.apiKeys.activeAPIKey(hash: hash) == nil)
            #expect(try await stores.apiKeys.apiKey(id: key.id, ownerID: user.id)?.isRevoked == true)
            #expect(try await stores.apiKeys.deleteAPIKey(id: key.id, ownerID: user.id))
            #expect(try await stores.apiKeys.apiKeys(ownerID: user.id).isEmpty)

            #expect(try await stores.users.deleteUser(id: other.id))
            #expect(try await stores.users.user(id: other.id) == nil)
        }
    }

    @Test func chatsAndMessages() async throws {
        try await TestDatabase.with { _, stores in
            let ada = try await stores.users.createUser(email: "ada@example.com", name: "", role: .user)
            let bob = try await stores.users.createUser(email: "bob@example.com", name: "", role: .user)
            let (chat, first) = try await stores.messages.startChat(
                title: "Plans", externalThreadKey: nil,
                firstMessage: NewMessage(chatID: 0, ownerID: ada.id, content: "hello", idempotencyKey: "idem-1"))
            #expect(first.chatID == chat.id)
            #expect(first.status == .queued)
            #expect(try await stores.chats.chat(id: chat.id, ownerID: ada.id) == chat)
            #expect(try await stores.chats.chat(id: chat.id, ownerID: bob.id) == nil)

            let second = try await stores.messages.insertMessage(NewMessage(chatID: chat.id, ownerID: ada.id, content: "second"))
            let answer = try await stores.messages.insertMessage(
                NewMessage(chatID: chat.id, ownerID: ada.id, role: .assistant, content: "", status: .running, replyToID: second.id))
            #expect(try await stores.messages.message(id: answer.id, ownerID: ada.id) == answer)
            #expect(try await stores.messages.message(id: answer.id) == answer)
            #expect(try await stores.messages.message(ownerID: ada.id, idempotencyKey: "idem-1")?.id == first.id)
            #expect(try await stores.messages.message(ownerID: bob.id, idempotencyKey: "idem-1") == nil)

            let newest = try await stores.messages.messages(chatID: chat.id, ownerID: ada.id, limit: 2, beforeID: nil, afterID: nil)
            #expect(newest.map(\.id) == [answer.id, second.id])
            let older = try await stores.messages.messages(chatID: chat.id, ownerID: ada.id, limit: 2, beforeID: second.id, afterID: nil)
            #expect(older.map(\.id) == [first.id])
            let after = try await stores.messages.messages(chatID: chat.id, ownerID: ada.id, limit: 10, beforeID: nil, afterID: first.id)
            #expect(after.map(\.id) == [second.id, answer.id])
            #expect(try await stores.messages.messages(chatID: chat.id, ownerID: bob.id, limit: 10, beforeID: nil, afterID: nil).isEmpty)

            #expect(try await stores.messages.updateStatus(id: second.id, to: .running, error: nil, from: [.queued]))
            #expect(try await stores.messages.updateStatus(id: second.id, to: .running, error: nil, from: [.queued]) == false)
            #expect(try await stores.messages.completeTurn(id: second.id, topic: "billing", language: "de"))
            #expect(try await stores.messages.updateContent(id: answer.id, content: "the answer"))
            #expect(try await stores.messages.updateStatus(id: second.id, to: .failed, error: "provider down", from: nil))
            let updated = try #require(try await stores.messages.message(id: second.id, ownerID: ada.id))
            #expect(updated.status == .failed)
            #expect(updated.error == "provider down")
            #expect(updated.topic == "billing")
            #expect(updated.language == "de")
            #expect(try await stores.messages.message(id: answer.id)?.content == "the answer")

            let threaded = try await stores.chats.createChat(ownerID: ada.id, title: "mail", channel: .email, externalThreadKey: "<root@mail>")
            #expect(try await stores.chats.chat(ownerID: ada.id, channel: .email, externalThreadKey: "<root@mail>") == threaded)
            #expect(try await stores.chats.chat(ownerID: bob.id, channel: .email, externalThreadKey: "<root@mail>") == nil)
            #expect(try await stores.chats.chats(ownerID: ada.id, limit: 1, beforeID: nil).map(\.id) == [threaded.id])
            #expect(try await stores.chats.chats(ownerID: ada.id, limit: 10, beforeID: threaded.id).map(\.id) == [chat.id])
            #expect(try await stores.chats.chats(ownerID: bob.id, limit: 10, beforeID: nil).isEmpty)
            #expect(try await stores.chats.renameChat(id: chat.id, ownerID: bob.id, title: "stolen") == false)
            #expect(try await stores.chats.renameChat(id: chat.id, ownerID: ada.id, title: "Renamed"))
            try await stores.chats.touchChat(id: chat.id)
            #expect(try await stores.chats.chat(id: chat.id, ownerID: ada.id)?.title == "Renamed")

            #expect(try await stores.messages.deleteMessage(id: first.id, ownerID: bob.id) == false)
            #expect(try await stores.messages.deleteMessage(id: first.id, ownerID: ada.id))
            #expect(try await stores.chats.deleteChat(id: chat.id, ownerID: bob.id) == false)
            #expect(try await stores.chats.deleteChat(id: chat.id, ownerID: ada.id))
            #expect(try await stores.messages.message(id: second.id) == nil)  // cascaded
        }
    }

    @Test func messageTasks() async throws {
        try await TestDatabase.with { _, stores in
            let ada = try await stores.users.createUser(email: "ada@example.com", name: "", role: .user)
            let bob = try await stores.users.createUser(email: "bob@example.com", name: "", role: .user)
            let chat = try await stores.chats.createChat(ownerID: ada.id, title: "", channel: .web, externalThreadKey: nil)
            let message = try await stores.messages.insertMessage(NewMessage(chatID: chat.id, ownerID: ada.id, content: "two things"))
            let saved = try await stores.tasks.saveTasks(
                messageID: message.id,
                tasks: [
                    PlannedTask(nodeID: "a", capability: "summarize"), PlannedTask(nodeID: "b", capability: "translate"),
                    PlannedTask(nodeID: "reply", capability: "compose_reply", dependsOn: ["a", "b"]),
                ])
            #expect(saved.map(\.state) == [.pending, .pending, .pending])
            #expect(try await stores.tasks.tasks(messageID: message.id) == saved)
            #expect(try await stores.tasks.tasks(messageID: message.id, ownerID: ada.id).map(\.dependsOn) == [[], [], ["a", "b"]])
            #expect(try await stores.tasks.tasks(messageID: message.id, ownerID: bob.id).isEmpty)

            #expect(try await stores.tasks.updateTask(messageID: message.id, nodeID: "a", state: .running, output: nil, error: nil))
            #expect(try await stores.tasks.updateTask(messageID: message.id, nodeID: "a", state: .done, output: "short", error: nil))
            #expect(try await stores.tasks.updateTask(messageID: message.id, nodeID: "b", state: .failed, output: nil, error: "timeout"))
            #expect(try await stores.tasks.updateTask(messageID: message.id, nodeID: "reply", state: .skipped, output: nil, error: nil))
            #expect(try await stores.tasks.updateTask(messageID: message.id, nodeID: "nope", state: .done, output: nil, error: nil) == false)
            let tasks = try await stores.tasks.tasks(messageID: message.id)
            #expect(tasks.map(\.state) == [.done, .failed, .skipped])
            #expect(tasks[0].output == "short")
            #expect(tasks[0].startedAt != nil && tasks[0].finishedAt != nil)
            #expect(tasks[1].error == "timeout")

            // Re-planning replaces the rows.
            let replanned = try await stores.tasks.saveTasks(messageID: message.id, tasks: [PlannedTask(nodeID: "chat", capability: "chat")])
            #expect(try await stores.tasks.tasks(messageID: message.id) == replanned)
            #expect(try await stores.tasks.deleteTasks(messageID: message.id) == 1)
            #expect(try await stores.tasks.tasks(messageID: message.id).isEmpty)
        }
    }

    @Test func filesAndChunks() async throws {
        try await TestDatabase.with { _, stores in
            let ada = try await stores.users.createUser(email: "ada@example.com", name: "", role: .user)
            let bob = try await stores.users.createUser(email: "bob@example.com", name: "", role: .user)
            let chat = try await stores.chats.createChat(ownerID: ada.id, title: "", channel: .web, externalThreadKey: nil)
            let message = try await stores.messages.insertMessage(NewMessage(chatID: chat.id, ownerID: ada.id, content: "see file"))
            let file = try await stores.files.createFile(
                NewFile(
                    ownerID: ada.id, chatID: chat.id, messageID: message.id, name: "report.pdf", mimeType: "application/pdf",
                    size: 12_345, sha256: String(repeating: "0f", count: 32), storagePath: "files/1/report.pdf"))
            #expect(try await stores.files.file(id: file.id, ownerID: ada.id) == file)
            #expect(try await stores.files.file(id: file.id, ownerID: bob.id) == nil)
            #expect(try await stores.files.file(id: file.id) == file)
            #expect(try await stores.files.files(ownerID: ada.id, chatID: chat.id, limit: 10) == [file])
            #expect(try await stores.files.files(ownerID: ada.id, chatID: nil, limit: 10) == [file])
            #expect(try await stores.files.files(ownerID: bob.id, chatID: nil, limit: 10).isEmpty)
            #expect(try await stores.files.files(messageID: message.id) == [file])

            #expect(try await stores.files.updateExtraction(id: file.id, status: .done, text: "Quarterly numbers", error: nil))
            let extracted = try #require(try await stores.files.file(id: file.id, ownerID: ada.id))
            #expect(extracted.extractStatus == .done)
            #expect(extracted.extractedText == "Quarterly numbers")

            let chunks = try await stores.chunks.insertChunks(
                fileID: file.id, ownerID: ada.id,
                chunks: [
                    NewChunk(ordinal: 0, text: "north", embedding: [1, 0, 0]),
                    NewChunk(ordinal: 1, text: "east", embedding: [0, 1, 0]),
                    NewChunk(ordinal: 2, text: "north-east", embedding: [0.7, 0.7, 0]),
                    NewChunk(ordinal: 3, text: "not embedded yet", embedding: []),
                ])
            #expect(try await stores.chunks.chunks(fileID: file.id, ownerID: ada.id) == chunks)
            #expect(try await stores.chunks.chunks(fileID: file.id, ownerID: bob.id).isEmpty)
            await #expect(throws: DatabaseError.self) {
                try await stores.chunks.insertChunks(fileID: file.id, ownerID: bob.id, chunks: [NewChunk(ordinal: 9, text: "x", embedding: [1])])
            }

            let nearest = try await stores.chunks.nearestChunks(ownerID: ada.id, query: [0.9, 0.1, 0], limit: 2)
            #expect(nearest.map(\.chunk.text) == ["north", "north-east"])
            #expect(nearest[0].score > nearest[1].score)
            #expect(try await stores.chunks.nearestChunks(ownerID: bob.id, query: [0.9, 0.1, 0], limit: 2).isEmpty)
            #expect(try await stores.chunks.nearestChunks(ownerID: ada.id, query: [1, 0], limit: 2).isEmpty)  // other dimension

            #expect(try await stores.chunks.deleteChunks(fileID: file.id, ownerID: bob.id) == 0)
            #expect(try await stores.chunks.deleteChunks(fileID: file.id, ownerID: ada.id) == 4)
            #expect(try await stores.files.deleteFile(id: file.id, ownerID: bob.id) == false)
            #expect(try await stores.files.deleteFile(id: file.id, ownerID: ada.id))
            #expect(try await stores.files.file(id: file.id) == nil)
        }
    }

    @Test func widgetsAndSessions() async throws {
        try await TestDatabase.with { _, stores in
            let ada = try await stores.users.createUser(email: "ada@example.com", name: "", role: .user)
            let bob = try await stores.users.createUser(email: "bob@example.com", name: "", role: .user)
            let widget = try await stores.widgets.createWidget(
                ownerID: ada.id, name: "Support", publicKey: "wk_123", allowedOrigins: ["https://shop.example"],
                settings: ["greeting": "Hi 👋", "color": "#123456"])
            #expect(try await stores.widgets.widget(id: widget.id, ownerID: ada.id) == widget)
            #expect(try await stores.widgets.widget(id: widget.id, ownerID: bob.id) == nil)
            #expect(try await stores.widgets.widget(publicKey: "wk_123") == widget)
            #expect(try await stores.widgets.widgets(ownerID: ada.id) == [widget])
            #expect(try await stores.widgets.widgets(ownerID: bob.id).isEmpty)
            #expect(try await stores.widgets.updateWidget(id: widget.id, ownerID: bob.id, name: "x", allowedOrigins: nil, settings: nil) == nil)
            let updated = try #require(
                try await stores.widgets.updateWidget(
                    id: widget.id, ownerID: ada.id, name: nil, allowedOrigins: ["https://a.example", "https://b.example"], settings: nil))
            #expect(updated.name == "Support")
            #expect(updated.allowedOrigins == ["https://a.example", "https://b.example"])
            #expect(updated.settings == widget.settings)

            let session = try await stores.widgets.openSession(widgetID: widget.id, visitorSessionID: "visitor-1")
            #expect(session.mode == .ai)
            #expect(try await stores.widgets.openSession(widgetID: widget.id, visitorSessionID: "visitor-1").id == session.id)
            let chat = try await stores.chats.createChat(ownerID: ada.id, title: "", channel: .widget, externalThreadKey: "visitor-1")
            #expect(try await stores.widgets.setSessionChat(id: session.id, chatID: chat.id))
            #expect(try await stores.widgets.setSessionMode(id: session.id, mode: .waiting))
            let waiting = try await stores.widgets.sessions(widgetID: widget.id, ownerID: ada.id, mode: .waiting, limit: 10)
            #expect(waiting.map(\.id) == [session.id])
            #expect(waiting.first?.chatID == chat.id)
            #expect(try await stores.widgets.sessions(widgetID: widget.id, ownerID: ada.id, mode: .human, limit: 10).isEmpty)
            #expect(try await stores.widgets.sessions(widgetID: widget.id, ownerID: bob.id, mode: nil, limit: 10).isEmpty)
            #expect(try await stores.widgets.session(id: session.id, ownerID: bob.id) == nil)
            #expect(try await stores.widgets.session(id: session.id, ownerID: ada.id)?.mode == .waiting)
            #expect(try await stores.widgets.session(widgetID: widget.id, visitorSessionID: "visitor-1")?.id == session.id)

            #expect(try await stores.widgets.deleteSession(id: session.id, ownerID: bob.id) == false)
            #expect(try await stores.widgets.deleteSession(id: session.id, ownerID: ada.id))
            #expect(try await stores.widgets.deleteWidget(id: widget.id, ownerID: bob.id) == false)
            #expect(try await stores.widgets.deleteWidget(id: widget.id, ownerID: ada.id))
            #expect(try await stores.widgets.widget(publicKey: "wk_123") == nil)
        }
    }

    /// A visitor's burst (requests held up together and let go at once), an AI reply and an
    /// operator's takeover all write to one live session at the same time: every write lands, in
    /// one log, without a deadlock surfacing as an error.
    @Test func concurrentWritesToOneLiveSessionAllLand() async throws {
        // 27 writers share 8 connections and one session's row lock: with every suite running at
        // once, the last of them can wait past the default 10 s for a connection, which is not
        // what is under test here.
        try await TestDatabase.with(acquireTimeout: .seconds(120)) { _, stores in
            let ada = try await stores.users.createUser(email: "ada@example.com", name: "", role: .user)
            let widget = try await stores.widgets.createWidget(
                ownerID: ada.id, name: "Support", publicKey: "wk_burst", allowedOrigins: [], settings: [:])
            let chat = try await stores.chats.createChat(ownerID: ada.id, title: "", channel: .widget, externalThreadKey: nil)
            let session = try await stores.liveSupport.createSession(
                widgetID: widget.id, sessionID: "visitor-burst", tokenHash: Data(repeating: 7, count: 32), chatID: chat.id)
            var messageIDs: [Int64] = []
            for index in 0..<24 {
                messageIDs.append(try await stores.messages.insertMessage(NewMessage(chatID: chat.id, ownerID: ada.id, content: "m\(index)")).id)
            }
            let modeChanges = try await withThrowingTaskGroup(of: Bool.self) { group in
                for (index, id) in messageIDs.enumerated() {
                    group.addTask {
                        try await stores.liveSupport.recordMessage(
                            sessionRowID: session.id, messageID: id, role: index % 3 == 0 ? "assistant" : "visitor", preview: "m\(index)",
                            actorUserID: nil)
                        return false
                    }
                    if index % 8 == 4 {
                        group.addTask {
                            try await stores.liveSupport.setMode(
                                sessionRowID: session.id, to: index % 16 == 4 ? .human : .ai, operatorID: ada.id, actorUserID: ada.id, from: nil) != nil
                        }
                    }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(modeChanges == 3)
            let events = try await stores.liveSupport.events(sessionRowID: session.id)
            #expect(Set(events.compactMap(\.messageID)) == Set(messageIDs))
            // Each change bumped the version once, and each message was logged under a version that existed.
            let versions = events.filter { $0.kind == .mode }.map(\.modeVersion).sorted()
            #expect(versions == Array(versions.first!...(versions.first! + 2)))
            #expect(events.filter { $0.kind == .message }.allSatisfy { $0.modeVersion <= versions.last! })
            #expect(try await stores.liveSupport.session(chatID: chat.id)?.modeVersion == versions.last!)
        }
    }

    @Test func topicsAndRoutingRules() async throws {
        try await TestDatabase.with { _, stores in
            let ada = try await stores.users.createUser(email: "ada@example.com", name: "", role: .user)
            let bob = try await stores.users.createUser(email: "bob@example.com", name: "", role: .user)
            let global = try await stores.topics.createTopic(ownerID: nil, name: "billing", description: "Invoices", examples: ["my invoice"])
            let own = try await stores.topics.createTopic(ownerID: ada.id, name: "garden", description: "Plants", examples: ["tomatoes", "roses"])
            #expect(try await stores.topics.topic(id: own.id, visibleTo: ada.id) == own)
            #expect(try await stores.topics.topic(id: own.id, visibleTo: bob.id) == nil)
            #expect(try await stores.topics.topic(id: global.id, visibleTo: bob.id) == global)
            #expect(try await stores.topics.topics(visibleTo: ada.id).map(\.name) == ["billing", "garden"])
            #expect(try await stores.topics.topics(visibleTo: bob.id).map(\.name) == ["billing"])

            #expect(try await stores.topics.updateTopic(id: global.id, ownerID: ada.id, name: "mine", description: nil, examples: nil) == nil)
            let updated = try #require(try await stores.topics.updateTopic(id: own.id, ownerID: ada.id, name: nil, description: nil, examples: ["lawn"]))
            #expect(updated.examples == ["lawn"])
            #expect(updated.description == "Plants")

            #expect(try await stores.topics.createRule(topicID: own.id, ownerID: bob.id, kind: .keyword, pattern: "x", priority: 1, enabled: true) == nil)
            let keyword = try #require(
                try await stores.topics.createRule(topicID: own.id, ownerID: ada.id, kind: .keyword, pattern: "tomato", priority: 5, enabled: true))
            let regex = try #require(
                try await stores.topics.createRule(topicID: global.id, ownerID: nil, kind: .regex, pattern: #"invoice\s+\d+"#, priority: 10, enabled: true))
            #expect(try await stores.topics.rules(topicID: own.id, visibleTo: ada.id) == [keyword])
            #expect(try await stores.topics.rules(topicID: own.id, visibleTo: bob.id).isEmpty)
            let active = try await stores.topics.activeRules(visibleTo: ada.id)
            #expect(active.map(\.rule.id) == [regex.id, keyword.id])
            #expect(active.map(\.topic) == ["billing", "garden"])
            #expect(try await stores.topics.activeRules(visibleTo: bob.id).map(\.rule.id) == [regex.id])

            #expect(try await stores.topics.updateRule(id: keyword.id, ownerID: bob.id, pattern: nil, priority: nil, enabled: false) == false)
            #expect(try await stores.topics.updateRule(id: keyword.id, ownerID: ada.id, pattern: "tomatoes", priority: nil, enabled: false))
            #expect(try await stores.topics.activeRules(visibleTo: ada.id).map(\.rule.id) == [regex.id])
            #expect(try await stores.topics.rules(topicID: own.id, visibleTo: ada.id).first?.pattern == "tomatoes")
            #expect(try await stores.topics.deleteRule(id: regex.id, ownerID: ada.id) == false)
            #expect(try await stores.topics.deleteRule(id: regex.id, ownerID: nil))
            #expect(try await stores.topics.deleteTopic(id: own.id, ownerID: bob.id) == false)
            #expect(try await stores.topics.deleteTopic(id: own.id, ownerID: ada.id))
            #expect(try await stores.topics.rules(topicID: own.id, visibleTo: ada.id).isEmpty)
            #expect(try await stores.topics.topics(visibleTo: ada.id).map(\.name) == ["billing"])
        }
    }

    @Test func aMessageCanOnlyBeStoredInAChatOfItsOwner() async throws {
        try await TestDatabase.with { _, stores in
            let ada = try await stores.users.createUser(email: "ada@example.com", name: "", role: .user)
            let bob = try await stores.users.createUser(email: "bob@example.com", name: "", role: .user)
            let chat = try await stores.chats.createChat(ownerID: ada.id, title: "", channel: .web, externalThreadKey: nil)
            _ = try await stores.messages.insertMessage(NewMessage(chatID: chat.id, ownerID: ada.id, content: "mine"))
            for (chatID, ownerID) in [(chat.id, bob.id), (chat.id + 1000, ada.id)] {
                let error = await #expect(throws: DatabaseError.self) {
                    _ = try await stores.messages.insertMessage(NewMessage(chatID: chatID, ownerID: ownerID, content: "not mine"))
                }
                #expect(error?.code == .foreignKeyViolation)
            }
            #expect(try await stores.messages.messages(chatID: chat.id, ownerID: ada.id, limit: 10, beforeID: nil, afterID: nil).map(\.content) == ["mine"])
            // Deleting the chat still takes its messages with it.
            #expect(try await stores.chats.deleteChat(id: chat.id, ownerID: ada.id))
            #expect(try await stores.messages.messages(chatID: chat.id, ownerID: ada.id, limit: 10, beforeID: nil, afterID: nil).isEmpty)
        }
    }

    @Test func aMessagesContextIsItsAttachmentCountAndItsChatsEarlierMessages() async throws {
        try await TestDatabase.with { _, stores in
            let ada = try await stores.users.createUser(email: "ada@example.com", name: "", role: .user)
            let (chat, first) = try await stores.messages.startChat(
                title: "t", externalThreadKey: nil, firstMessage: NewMessage(chatID: 0, ownerID: ada.id, content: "one"))
            let other = try await stores.chats.createChat(ownerID: ada.id, title: "other", channel: .web, externalThreadKey: nil)
            _ = try await stores.messages.insertMessage(NewMessage(chatID: other.id, ownerID: ada.id, content: "elsewhere"))
            var earlier = [first]
            for content in ["two", "three", "four"] {
                earlier.append(try await stores.messages.insertMessage(NewMessage(chatID: chat.id, ownerID: ada.id, content: content)))
            }
            let message = try await stores.messages.insertMessage(NewMessage(chatID: chat.id, ownerID: ada.id, content: "five"))
            _ = try await stores.messages.insertMessage(NewMessage(chatID: chat.id, ownerID: ada.id, content: "after"))

            let plain = try #require(try await stores.messages.messageContext(id: message.id, historyLimit: 3))
            #expect(plain.message == message)
            #expect(plain.attachmentCount == 0)
            #expect(plain.earlier.map(\.content) == ["four", "three", "two"], "newest first, this chat only, limited")
            #expect(try await stores.messages.messageContext(id: first.id, historyLimit: 3)?.earlier.isEmpty == true)
            #expect(try await stores.messages.messageContext(id: message.id, historyLimit: 0)?.earlier.isEmpty == true)
            #expect(try await stores.messages.messageContext(id: message.id + 1000, historyLimit: 3) == nil)

            for name in ["a.txt", "b.txt"] {
                _ = try await stores.files.createFile(NewFile(
                    ownerID: ada.id, chatID: chat.id, messageID: message.id, name: name, mimeType: "text/plain", size: 1,
                    sha256: String(repeating: "0", count: 64), storagePath: "files/\(name)"))
            }
            let withFiles = try #require(try await stores.messages.messageContext(id: message.id, historyLimit: 10))
            #expect(withFiles.attachmentCount == 2)
            #expect(withFiles.earlier.map(\.id) == earlier.reversed().map(\.id))
        }
    }

    @Test func completingATurnStoresItsClassificationAndBumpsTheChat() async throws {
        try await TestDatabase.with { _, stores in
            let ada = try await stores.users.createUser(email: "ada@example.com", name: "", role: .user)
            let (chat, message) = try await stores.messages.startChat(
                title: "t", externalThreadKey: nil, firstMessage: NewMessage(chatID: 0, ownerID: ada.id, content: "q"))
            try await Task.sleep(for: .milliseconds(5))
            #expect(try await stores.messages.updateStatus(id: message.id, to: .running, error: nil, from: [.queued]))
            #expect(try await stores.messages.completeTurn(id: message.id, topic: "billing", language: nil))
            let completed = try #require(try await stores.messages.message(id: message.id))
            #expect(completed.status == .completed)
            #expect(completed.topic == "billing")
            #expect(completed.language == nil)
            #expect(try #require(try await stores.chats.chat(id: chat.id, ownerID: ada.id)).updatedAt > chat.updatedAt)
            let reply = try await stores.messages.insertMessage(
                NewMessage(chatID: chat.id, ownerID: ada.id, role: .assistant, content: "a", status: .completed, replyToID: message.id))
            let pair = try #require(try await stores.messages.messageAndOrigin(id: reply.id))
            #expect(pair.message == reply)
            #expect(pair.origin?.id == message.id)
            #expect(try await stores.messages.messageAndOrigin(id: message.id)?.origin == nil)
            #expect(try await stores.messages.messageAndOrigin(id: reply.id + 1000) == nil)
            // Only once: a completed (or cancelled) turn is not completed again.
            #expect(try await stores.messages.completeTurn(id: message.id, topic: "other", language: "de") == false)
            #expect(try await stores.messages.message(id: message.id)?.topic == "billing")
        }
    }

    @Test func aFirstPlansRowsInOneStatementStartOverOnARerun() async throws {
        try await TestDatabase.with { _, stores in
            let ada = try await stores.users.createUser(email: "ada@example.com", name: "", role: .user)
            let chat = try await stores.chats.createChat(ownerID: ada.id, title: "", channel: .web, externalThreadKey: nil)
            let message = try await stores.messages.insertMessage(NewMessage(chatID: chat.id, ownerID: ada.id, content: "q"))
            let plan = [PlannedTask(nodeID: "a", capability: "summarize"), PlannedTask(nodeID: "reply", capability: "compose_reply", dependsOn: ["a"])]
            try await stores.tasks.insertTasks(messageID: message.id, tasks: plan)
            #expect(try await stores.tasks.updateTask(messageID: message.id, nodeID: "a", state: .done, output: "x", error: nil, started: true))
            let ran = try await stores.tasks.tasks(messageID: message.id)
            #expect(ran.map(\.state) == [.done, .pending])
            #expect(ran[0].startedAt != nil && ran[0].finishedAt != nil && ran[0].output == "x")
            #expect(ran[1].dependsOn == ["a"])
            // The same plan inserted again (a run that never claimed the turn left these rows): pending again.
            try await stores.tasks.insertTasks(messageID: message.id, tasks: plan)
            let again = try await stores.tasks.tasks(messageID: message.id)
            #expect(again.map(\.state) == [.pending, .pending])
            #expect(again[0].startedAt == nil && again[0].finishedAt == nil && again[0].output == nil)

            // A node the executor starts at once is stored running, by the insert and by a replacement.
            let started = [PlannedTask(nodeID: "a", capability: "summarize", startsRunning: true), plan[1]]
            try await stores.tasks.insertTasks(messageID: message.id, tasks: started)
            let running = try await stores.tasks.tasks(messageID: message.id)
            #expect(running.map(\.state) == [.running, .pending])
            #expect(running[0].startedAt != nil && running[1].startedAt == nil)
            let replaced = try await stores.tasks.saveTasks(messageID: message.id, tasks: started)
            #expect(replaced.map(\.state) == [.running, .pending])
            #expect(try await stores.tasks.tasks(messageID: message.id).map(\.state) == [.running, .pending])
        }
    }

    @Test func usageRecords() async throws {
        try await TestDatabase.with { _, stores in
            let ada = try await stores.users.createUser(email: "ada@example.com", name: "", role: .user)
            let bob = try await stores.users.createUser(email: "bob@example.com", name: "", role: .user)
            let chat = try await stores.chats.createChat(ownerID: ada.id, title: "", channel: .web, externalThreadKey: nil)
            let message = try await stores.messages.insertMessage(NewMessage(chatID: chat.id, ownerID: ada.id, content: "q"))
            let first = UsageCall(userID: ada.id, messageID: message.id, provider: "openai", model: "gpt", promptTokens: 10, completionTokens: 20, latencyMs: 300)
            let second = UsageCall(userID: ada.id, messageID: nil, provider: "ollama", model: "smol", promptTokens: 1, completionTokens: 2, latencyMs: 40)
            try await stores.usage.recordUsage([first])
            try await stores.usage.recordUsage([second])
            let stored = try await stores.usage.usage(userID: ada.id, since: nil, limit: 10)
            #expect(stored.map(\.call) == [second, first])
            #expect(stored[0].id > stored[1].id)
            #expect(try await stores.usage.usage(userID: bob.id, since: nil, limit: 10).isEmpty)
            #expect(try await stores.usage.usageTotals(userID: ada.id, since: nil) == UsageTotals(requests: 2, promptTokens: 11, completionTokens: 22))
            #expect(try await stores.usage.usageTotals(userID: bob.id, since: nil) == UsageTotals(requests: 0, promptTokens: 0, completionTokens: 0))
            #expect(try await stores.usage.usageTotals(userID: ada.id, since: Date().addingTimeInterval(60)).requests == 0)
            try await stores.usage.recordUsage([
                UsageCall(userID: bob.id, messageID: message.id, provider: "p", model: "sort", promptTokens: 3, completionTokens: 1, latencyMs: 2),
                UsageCall(userID: bob.id, messageID: message.id, provider: "p", model: "chat", promptTokens: 5, completionTokens: 7, latencyMs: 9),
            ])
            #expect(try await stores.usage.usage(userID: bob.id, since: nil, limit: 10).map(\.model) == ["chat", "sort"])
            #expect(try await stores.usage.usageTotals(userID: bob.id, since: nil) == UsageTotals(requests: 2, promptTokens: 8, completionTokens: 8))
            #expect(try await stores.usage.deleteUsage(before: Date().addingTimeInterval(60)) == 4)
            #expect(try await stores.usage.usage(userID: ada.id, since: nil, limit: 10).isEmpty)
        }
    }
}
