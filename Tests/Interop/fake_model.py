"""A fake OpenAI-compatible model server for the interop suites: every chat completion is
answered with FIXED_REPLY (streamed word by word when asked) and every embedding with EMBEDDING,
so a turn's reply is known in advance. `running(word_delay=..., echo=True)` paces a streamed reply
and answers `Reply to: <the last user message>` instead, so every reply names its question
(scripts/faults)."""

import contextlib
import http.server
import json
import threading
import time

FIXED_REPLY = "The fake model says hello."
EMBEDDING = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]


class FakeModel(http.server.BaseHTTPRequestHandler):
    """Answers every chat completion with FIXED_REPLY (streamed word by word when asked) and
    every embedding with EMBEDDING."""

    protocol_version = "HTTP/1.1"
    # Seconds between streamed words: a slow provider, for tests that act during a turn.
    word_delay = 0.0
    # Answer `Reply to: <the last user message>` instead of FIXED_REPLY.
    echo = False

    def log_message(self, *args):
        pass

    def _json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "test"}]})
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        if self.path.endswith("/embeddings"):
            inputs = request.get("input")
            inputs = inputs if isinstance(inputs, list) else [inputs]
            self._json(200, {
                "object": "list", "model": request.get("model", "fake-embed"),
                "data": [{"object": "embedding", "index": i, "embedding": EMBEDDING} for i in range(len(inputs))],
                "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
            })
            return
        if not self.path.endswith("/chat/completions"):
            self._json(404, {"error": {"message": "not found"}})
            return
        usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
        model = request.get("model", "fake-model")
        reply = FIXED_REPLY
        if self.echo:
            asked = [m.get("content") for m in request.get("messages") or [] if m.get("role") == "user"]
            reply = f"Reply to: {asked[-1] if asked and isinstance(asked[-1], str) else ''}"
        if not request.get("stream"):
            self._json(200, {
                "id": "fake-1", "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                "usage": usage,
            })
            return
        try:
            self._stream(reply, model, usage, request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the caller went away mid-reply (a worker killed in a fault test)

    def _stream(self, reply, model, usage, request):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        words = reply.split(" ")
        pieces = [word + (" " if i < len(words) - 1 else "") for i, word in enumerate(words)]
        for piece in pieces:
            if self.word_delay:
                time.sleep(self.word_delay)
                self.wfile.flush()
            chunk = {"id": "fake-1", "object": "chat.completion.chunk", "created": 0, "model": model,
                     "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        last = {"id": "fake-1", "object": "chat.completion.chunk", "created": 0, "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        self.wfile.write(f"data: {json.dumps(last)}\n\n".encode())
        if (request.get("stream_options") or {}).get("include_usage"):
            self.wfile.write(f"data: {json.dumps({'id': 'fake-1', 'object': 'chat.completion.chunk', 'created': 0, 'model': model, 'choices': [], 'usage': usage})}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


@contextlib.contextmanager
def running(word_delay=0.0, echo=False):
    """Serves the fake model on a free loopback port; yields its base URL (ending in /v1).
    `word_delay` paces a streamed answer (seconds before each word); `echo` answers
    `Reply to: <the last user message>`."""
    handler = type("PacedFakeModel", (FakeModel,), {"word_delay": word_delay, "echo": echo}) if word_delay or echo else FakeModel
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
