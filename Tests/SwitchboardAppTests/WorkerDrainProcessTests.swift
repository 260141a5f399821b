import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Queue
import RedisClient
import Storage
import SwitchboardCore
import TestSupport
import Testing
import Turns

/// `switchboard worker`, the real executable, stopped with SIGTERM while a turn streams: the turn
/// finishes (drain) before the process exits 0.
@Suite(.serialized) struct WorkerDrainProcessTests {
    /// An OpenAI-compatible server that streams `words` reply tokens, one every `interval`.
    static func slowModelServer(port: Int, words: Int, interval: Duration) -> some ApplicationProtocol {
        let router = Router()
        router.post("/v1/chat/completions") { request, _ -> Response in
            var request = request
            let body = try await request.collectBody(upTo: 1 << 20)
            guard String(buffer: body).contains("\"stream\":true") else {
                let json = #"{"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: json)))
            }
            return Response(status: .ok, headers: [.contentType: "text/event-stream"], body: ResponseBody { writer in
                for index in 0..<words {
                    try await Task.sleep(for: interval)
                    let chunk = #"{"choices":[{"index":0,"delta":{"content":"w\#(index) "}}]}"#
                    try await writer.write(ByteBuffer(string: "data: \(chunk)\n\n"))
                }
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
            })
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: TestServices.logger("model"))
    }

    @Test func sigtermLetsTheRunningTurnFinishBeforeTheWorkerExits() async throws {
        let prefix = "sbtest-drain-\(UUID().uuidString.prefix(8)):"
        let modelPort = try TestServices.freePort()
        let model = Task { try await Self.slowModelServer(port: modelPort, words: 25, interval: .milliseconds(100)).runService() }
        defer { model.cancel() }

        let logger = TestServices.logger("drain")
        let database = try await Database.connect(try DatabaseConfiguration(url: TestServices.databaseURL), logger: logger)
        _ = try await Migrator(database: database, logger: logger).migrate()
        let stores = Stores(database: database)
        let redis = try TestRedis.client(prefix: prefix)
        let user = try await stores.users.createUser(email: "drain-\(UUID().uuidString.prefix(8).lowercased())@example.com", name: "d", role: .user)
        let message = try await stores.messages.startChat(
            title: "drain", externalThreadKey: nil, firstMessage: NewMessage(chatID: 0, ownerID: user.id, content: "hello there", channel: .web)
        ).message

        let (process, out, err) = try ProcessTests.launch(
            ["worker"],
            environment: [
                "SB_REDIS_KEY_PREFIX": prefix, "SB_WORKER_HEALTH_PORT": "\(try TestServices.freePort())",
                "SB_AI_BASE_URL": "http://127.0.0.1:\(modelPort)/v1", "SB_AI_MODEL": "slow-test-model",
            ])
        // Drained from the start, so the worker never blocks on a full pipe while it logs.
        async let logs = out.fileHandleForReading.readToEndOffPool()
        async let errors = err.fileHandleForReading.readToEndOffPool()
        try await Turns.enqueue(messageID: message.id, on: JobQueue(client: redis))

        // Wait for the reply to stream, then stop the worker in the middle of it.
        let reader = TurnStreamReader(redis: redis)
        var streaming = false
        for _ in 0..<300 where process.isRunning && !streaming {
            streaming = try await reader.all(messageID: message.id).contains { $0.type == "chunk" }
            if !streaming { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(streaming, "the turn started streaming within 30 s")
        process.terminate()  // SIGTERM

        let deadline = Date().addingTimeInterval(30)
        while process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            Issue.record("the worker did not stop within 30 s of SIGTERM")
        }
        await process.waitForExit()
        let stderr = String(decoding: await errors, as: UTF8.self) + String(decoding: await logs, as: UTF8.self)
        #expect(process.terminationStatus == 0, "stderr: \(stderr.suffix(2000))")

        let entries = try await reader.all(messageID: message.id)
        #expect(entries.last?.type == "complete", "the drained turn ended with complete, not with the worker")
        let reply = entries.filter { $0.type == "chunk" }.compactMap { entry -> String? in
            guard case .chunk(let chunk)? = entry.event else { return nil }
            return chunk.text
        }.joined()
        #expect(reply.hasPrefix("w0 ") && reply.contains("w24"), "every token of the reply was streamed: \(reply)")
        #expect(try await stores.messages.message(id: message.id)?.status == .completed)

        _ = try await stores.users.deleteUser(id: user.id)
        await TestRedis.discard(redis)
        await database.shutdown()
    }
}
