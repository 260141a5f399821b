import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import TestSupport
import Testing

/// A tiny HTTP server in a Python subprocess that plays a scripted OpenAI-compatible server:
/// each request takes the next step of `steps` (the last repeats). GET /count tells how many
/// POSTs it has seen.
final class FakeOpenAIServer: Sendable {
    enum Step: Sendable {
        case status(Int, body: String, retryAfter: String? = nil)
        /// 200 text/event-stream; the body goes out in pieces of `pieceSize` bytes.
        case stream(String, pieceSize: Int = 7)
        case json(String)
        /// 200 headers, then nothing for `seconds`.
        case stall(seconds: Double)

        var encoded: [String: Any] {
            switch self {
            case .status(let code, let body, let retryAfter):
                return ["kind": "status", "code": code, "body": body, "retry_after": retryAfter ?? ""]
            case .stream(let body, let pieceSize): return ["kind": "stream", "body": body, "piece": pieceSize]
            case .json(let body): return ["kind": "json", "body": body]
            case .stall(let seconds): return ["kind": "stall", "seconds": seconds]
            }
        }
    }

    let process: Process
    /// The server exits when this closes, so it never outlives the test process.
    let stdin: Pipe
    let port: Int
    var baseURL: String { "http://127.0.0.1:\(port)/v1" }

    init(_ steps: [Step]) throws {
        let stepsJSON = String(decoding: try JSONSerialization.data(withJSONObject: steps.map(\.encoded)), as: UTF8.self)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-u", "-c", Self.script, stepsJSON]
        let stdout = Pipe()
        let stdin = Pipe()
        process.standardOutput = stdout
        process.standardInput = stdin
        process.standardError = FileHandle.nullDevice
        try process.run()
        // The first line is the port.
        var line = Data()
        while true {
            let byte = stdout.fileHandleForReading.readData(ofLength: 1)
            if byte.isEmpty || byte == Data("\n".utf8) { break }
            line.append(byte)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self)) else {
            process.terminate()
            throw FakeServerError()
        }
        self.process = process
        self.stdin = stdin
        self.port = port
    }

    struct FakeServerError: Error {}

    func requestCount() async throws -> Int {
        let (data, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/count")!)
        return Int(String(decoding: data, as: UTF8.self)) ?? -1
    }

    func stop() {
        try? stdin.fileHandleForWriting.close()
        kill(process.processIdentifier, SIGKILL)
    }

    static let script = #"""
import json, os, sys, threading, time
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
steps = json.loads(sys.argv[1])
lock = threading.Lock()
count = [0]
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        body = str(count[0]).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0")); self.rfile.read(n)
        with lock:
            step = steps[min(count[0], len(steps) - 1)]; count[0] += 1
        kind = step["kind"]
        if kind == "status":
            body = step["body"].encode()
            self.send_response(step["code"]); self.send_header("Content-Type", "application/json")
            if step["retry_after"]: self.send_header("Retry-After", step["retry_after"])
            self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
        elif kind == "json":
            body = step["body"].encode()
            self.send_response(200); self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
        elif kind == "stream":
            body = step["body"].encode(); piece = step["piece"]
            self.send_response(200); self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked"); self.end_headers()
            for i in range(0, len(body), piece):
                part = body[i:i + piece]
                self.wfile.write(b"%x\r\n" % len(part) + part + b"\r\n"); self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n"); self.wfile.flush()
        elif kind == "stall":
            self.send_response(200); self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked"); self.end_headers(); self.wfile.flush()
            time.sleep(step["seconds"])
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
s.daemon_threads = True
print(s.server_address[1], flush=True)
s.serve_forever()
"""#
}

