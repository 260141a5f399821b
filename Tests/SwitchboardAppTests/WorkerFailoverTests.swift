import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import RedisClient
import Storage
import SwitchboardCore
import TestSupport
import Testing
import Turns

/// An OpenAI-compatible model server in a Python subprocess (standard library only) that streams
/// every chat answer slowly and deterministically: `tokens` tokens, one every `interval` seconds.
/// With `holdFirstAfter` the first stream stops after that many tokens and never ends (its client
/// must go away), so a test can kill that client mid-answer however slow the machine is. One-shot
/// chat answers a fixed sorter verdict; embeddings are a constant vector.
final class SlowModelServer: Sendable {
    let process: Process
    let port: Int
    var baseURL: String { "http://127.0.0.1:\(port)/v1" }

    init(tokens: Int, interval: Double, holdFirstAfter: Int? = nil, log: URL) throws {
        port = try TestServices.freePort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-u", "-c", Self.script, "\(port)", "\(tokens)", "\(interval)", "\(holdFirstAfter ?? -1)"]
        try process.run(loggingTo: log)
        self.process = process
    }

    /// Waits (bounded) until it answers.
    func waitUntilReady(within timeout: Duration = .seconds(20)) async throws {
        let url = URL(string: "http://127.0.0.1:\(port)/health")!
        let ready = try await eventually(within: timeout) {
            var request = URLRequest(url: url)
            request.timeoutInterval = 1
            return (try? await URLSession.shared.data(for: request)) != nil
        }
        if !ready { throw StackError("the model server did not start") }
    }

    func stop() async {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        await process.waitForExit()
    }

    static let script = #"""
import json, sys, threading, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
port, tokens, interval, hold_after = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
streams, lock = [0], threading.Lock()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send_json(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        self.send_json({"ok": True})
    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        if self.path.endswith("/embeddings"):
            texts = request.get("input") or []
            texts = [texts] if isinstance(texts, str) else texts
            self.send_json({"model": "slow-embed", "data": [{"index": i, "embedding": [1.0, 0.0, 0.0]} for i in range(len(texts))]})
            return
        if not request.get("stream"):
            verdict = json.dumps({"topic": "general", "language": "en", "web_search": False, "multi": False})
            self.send_json({"model": "slow", "choices": [{"index": 0, "message": {"role": "assistant", "content": verdict}, "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 5, "completion_tokens": 5}})
            return
        with lock:
            streams[0] += 1
            held = hold_after >= 0 and streams[0] == 1
        self.send_response(200); self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked"); self.end_headers()
        def send(obj):
            data = ("data: " + (obj if isinstance(obj, str) else json.dumps(obj)) + "\n\n").encode()
            self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n"); self.wfile.flush()
        try:
            for i in range(tokens):
                if held and i == hold_after:
                    time.sleep(3600)
                time.sleep(interval)
                send({"model": "slow", "choices": [{"index": 0, "delta": {"content": "word%d " % i}, "finish_reason": None}]})
            send({"model": "slow", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            send({"model": "slow", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": tokens}})
            send("[DONE]")
            self.wfile.write(b"0\r\n\r\n"); self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
s = ThreadingHTTPServer(("127.0.0.1", port), H)
s.daemon_threads = True
s.serve_forever()
"""#
}

/// `switchboard worker` processes started by a test; every one is killed when the test ends.
final class WorkerProcesses: @unchecked Sendable {
    private var processes: [Process] = []
    private let lock = NSLock()
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sb-workers-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    /// Starts `switchboard worker` with `environment` over the defaults; output goes to `<name>.log`.
    func start(_ name: String, environment: [String: String]) throws -> Process {
        let process = Process()
        process.executableURL = ProcessTests.binary
        process.arguments = ["worker"]
        var env = ProcessInfo.processInfo.environment
        env["SB_CONFIG"] = nil
        env.merge(environment) { $1 }
        process.environment = env
        process.currentDirectoryURL = directory
        try process.run(loggingTo: directory.appendingPathComponent("\(name).log"))
        lock.withLock { processes.append(process) }
        return process
    }

    func log(_ name: String) -> String {
        (try? String(contentsOf: directory.appendingPathComponent("\(name).log"), encoding: .utf8)) ?? ""
    }

    /// SIGKILL, then a bounded wait for the process to be gone.
    static func kill9(_ process: Process) async throws {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        let gone = try await eventually(within: .seconds(10)) { !process.isRunning }
        if !gone { throw StackError("process \(process.processIdentifier) survived SIGKILL") }
    }

    func killAll() async {
        for process in lock.withLock({ processes }) where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            await process.waitForExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }
}

/// A worker killed in the middle of a turn: another worker completes it, and the client that was
/// streaming the turn all along sees it end with exactly one `complete`.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct WorkerFailoverTests {
    /// 2 slots for 2 queues: the idle reader waits without claiming. 4: it waits in a blocking
    /// XREADGROUP holding a slot per queue, and the reclaimer must still take the turn over.
    @Test(arguments: [2, 4])
    func aWorkerKilledMidTurnIsReplacedAndTheStreamEndsWithOneComplete(concurrency: Int) async throws {
        let binary = ProcessTests.binary
        try #require(FileManager.default.isExecutableFile(atPath: binary.path), "build the switchboard binary first (\(binary.path))")
        let workers = try WorkerProcesses()
        // Worker A's stream is held after two words, so A is killed mid-answer on any machine.
        let model = try SlowModelServer(
            tokens: 12, interval: 0.25, holdFirstAfter: 2, log: workers.directory.appendingPathComponent("model.log"))
        let outcome = await capture {
            try await Self.failover(workers: workers, model: model, concurrency: concurrency)
        }
        await workers.killAll()
        await model.stop()
        try outcome.get()
    }

    static func failover(workers: WorkerProcesses, model: SlowModelServer, concurrency: Int) async throws {
        try await model.waitUntilReady()

        try await LiveStack.with { stack in
            func workerEnvironment(_ id: String, visibility: Int) throws -> [String: String] {
                [
                    "SB_REDIS_URL": TestServices.redisURL + (TestServices.redisURL.contains("?") ? "&" : "?") + "command_timeout=10",
                    "SB_REDIS_KEY_PREFIX": stack.keyPrefix, "SB_DATABASE_URL": stack.databaseURL,
                    "SB_WORKER_ID": id, "SB_WORKER_QUEUES": "ai,delivery", "SB_WORKER_HEALTH_PORT": "\(try TestServices.freePort())",
                    "SB_WORKER_VISIBILITY_TIMEOUT": "\(visibility)", "SB_WORKER_CONCURRENCY": "\(concurrency)",
                    "SB_AI_BASE_URL": model.baseURL, "SB_AI_MODEL": "slow", "SB_AI_EMBED_MODEL": "slow-embed", "SB_LOG_LEVEL": "info",
                ]
            }
            // A short plain message: the fast path decides, so the only model call is the slow stream.
            let (messageID, chatID) = try await stack.post("hello there")
            let client = stack.openEvents(messageID)
            defer { client.cancel() }

            let first = try workers.start("worker-a", environment: try workerEnvironment("worker-a", visibility: 30))
            let reader = TurnStreamReader(redis: stack.redis)
            let streaming = try await eventually(within: .seconds(60)) {
                try await reader.all(messageID: messageID).contains { $0.type == "chunk" }
            }
            try #require(streaming, "worker A never streamed a chunk; its log:\n\(workers.log("worker-a").suffix(3000))")
            try await WorkerProcesses.kill9(first)
            #expect(try await reader.all(messageID: messageID).contains { $0.isFinal } == false, "the turn ended before worker A was killed")

            // Worker B reclaims the turn once it has been idle for B's visibility timeout.
            _ = try workers.start("worker-b", environment: try workerEnvironment("worker-b", visibility: 1))
            let events: [SSEEvent]
            do {
                events = try await client.events(within: .seconds(90))
            } catch {
                Issue.record("worker B's log:\n\(workers.log("worker-b").suffix(3000))")
                throw error
            }

            let types = events.map(\.type)
            #expect(types.filter { $0 == "complete" }.count == 1, "\(types)")
            #expect(types.last == "complete", "\(types)")
            #expect(types.filter { $0 == "error" }.isEmpty, "\(types)")
            #expect(events.contains { $0.type == "status" && $0.json["stage"] as? String == "restarted" }, "\(types)")
            // Text streamed before the restart, and the whole answer after it.
            let restart = try #require(events.firstIndex { $0.type == "status" && $0.json["stage"] as? String == "restarted" })
            #expect(events[..<restart].contains { $0.type == "chunk" })
            let after = events[restart...].filter { $0.type == "chunk" }.compactMap { $0.json["text"] as? String }.joined()
            #expect(after == (0..<12).map { "word\($0) " }.joined())

            // One reply stored, and it is delivered (worker B serves the `delivery` queue).
            let messages = try await stack.stores.messages.messages(chatID: chatID, ownerID: try #require(try await stack.stores.messages.message(id: messageID)).ownerID, limit: 10, beforeID: nil, afterID: nil)
            #expect(messages.filter { $0.role == .assistant }.count == 1)
            let completion = try #require(events.last?.json)
            let replyID = try #require((completion["replyId"] as? NSNumber)?.int64Value)
            #expect(messages.first { $0.role == .assistant }?.id == replyID)
            let delivered = try await eventually(within: .seconds(20)) {
                let (status, json) = try await stack.json("GET", "/api/v1/messages/\(messageID)")
                return status == 200 && ((json["reply"] as? [String: Any])?["deliveredAt"] as? String) != nil
            }
            #expect(delivered, "the reply was not delivered; worker B's log:\n\(workers.log("worker-b").suffix(2000))")
        }
    }
}

extension Process {
    /// Starts the process with its output and errors in `log` (created empty) and no input.
    func run(loggingTo log: URL) throws {
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        standardOutput = handle
        standardError = handle
        standardInput = FileHandle.nullDevice
        try run()
    }
}
