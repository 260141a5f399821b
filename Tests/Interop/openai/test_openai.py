"""The OpenAI-compatible endpoint driven by the official `openai` Python package, and the generic
webhook's signed callback checked with the receiver code docs/api.md gives.

A real `switchboard serve` (api + worker + gateway) runs against the test Redis (a prefix of its
own) and a throw-away MariaDB database, with its AI provider pointed at a small fake
OpenAI-compatible model server written here, so every turn's reply is known in advance. The user
and API key are made with the CLI. Both a plain and a streamed completion are asserted, usage
included.

SB_SWITCHBOARD_CMD  the switchboard binary (default: .build/debug/switchboard, then release)
SB_TEST_REDIS_URL / SB_TEST_DATABASE_URL  the servers (defaults: the project's development ones)
"""

import http.server
import json
import os
import pathlib
import shlex
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid

import openai
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
FIXED_REPLY = "The fake model says hello."
EMBEDDING = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def switchboard():
    if os.environ.get("SB_SWITCHBOARD_CMD"):
        return shlex.split(os.environ["SB_SWITCHBOARD_CMD"])
    for build in ("debug", "release"):
        binary = ROOT / ".build" / build / "switchboard"
        if binary.exists():
            return [str(binary)]
    raise RuntimeError("no switchboard binary: run `swift build` first or set SB_SWITCHBOARD_CMD")


class FakeModel(http.server.BaseHTTPRequestHandler):
    """Answers every chat completion with FIXED_REPLY (streamed word by word when asked) and
    every embedding with EMBEDDING."""

    protocol_version = "HTTP/1.1"

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
        if not request.get("stream"):
            self._json(200, {
                "id": "fake-1", "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": FIXED_REPLY}, "finish_reason": "stop"}],
                "usage": usage,
            })
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        words = FIXED_REPLY.split(" ")
        pieces = [word + (" " if i < len(words) - 1 else "") for i, word in enumerate(words)]
        for piece in pieces:
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


@pytest.fixture(scope="module")
def fake_model():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeModel)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def mariadb_args(url):
    parsed = urllib.parse.urlparse(url)
    return ["mariadb", "-h", parsed.hostname or "127.0.0.1", "-P", str(parsed.port or 3306),
            "-u", urllib.parse.unquote(parsed.username or ""), f"-p{urllib.parse.unquote(parsed.password or '')}"]


@pytest.fixture(scope="module")
def stack(fake_model, tmp_path_factory):
    base_db = os.environ.get("SB_TEST_DATABASE_URL", "mariadb://switchboard:switchboard@127.0.0.1:3307/switchboard")
    redis_url = os.environ.get("SB_TEST_REDIS_URL", "redis://127.0.0.1:6380/0")
    name = f"switchboard_test_{uuid.uuid4().hex[:12]}"
    subprocess.run(mariadb_args(base_db) + ["-e", f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"], check=True)
    parsed = urllib.parse.urlparse(base_db)
    database_url = urllib.parse.urlunparse(parsed._replace(path=f"/{name}"))
    prefix = f"sbtest:{uuid.uuid4().hex[:12]}:"
    http_port = free_port()
    env = dict(os.environ)
    env.pop("SB_CONFIG", None)
    env.update({
        "SB_DATABASE_URL": database_url, "SB_REDIS_URL": redis_url, "SB_REDIS_KEY_PREFIX": prefix,
        "SB_HTTP_PORT": str(http_port), "SB_GATEWAY_PORT": str(free_port()), "SB_WORKER_HEALTH_PORT": str(free_port()),
        "SB_AI_BASE_URL": fake_model, "SB_AI_MODEL": "fake-model", "SB_AI_EMBED_MODEL": "fake-embed",
        "SB_LOG_LEVEL": "warning",
        # The generic webhook test's receiver listens on loopback.
        "SB_CHANNELS_ALLOW_PRIVATE_CALLBACKS": "true",
    })
    command = switchboard()
    logs = tmp_path_factory.mktemp("switchboard")
    process = None
    try:
        subprocess.run(command + ["migrate"], env=env, check=True, capture_output=True)
        email = f"sdk{uuid.uuid4().hex[:8]}@example.com"
        subprocess.run(command + ["users", "create", "--email", email], env=env, check=True, capture_output=True)
        key = subprocess.run(command + ["keys", "create", "--user", email], env=env, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        log = open(logs / "serve.log", "w")
        process = subprocess.Popen(command + ["serve"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"serve exited with {process.returncode}: {(logs / 'serve.log').read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("serve did not become healthy")
            time.sleep(0.2)
        yield {"base_url": f"http://127.0.0.1:{http_port}/v1", "api": f"http://127.0.0.1:{http_port}/api/v1", "key": key}
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        subprocess.run(mariadb_args(base_db) + ["-e", f"DROP DATABASE IF EXISTS `{name}`"], capture_output=True)
        host_port = redis_url.split("://", 1)[1].split("/", 1)[0]
        host, _, port = host_port.rpartition(":")
        keys = subprocess.run(["redis-cli", "-h", host or "127.0.0.1", "-p", port or "6379", "--scan", "--pattern", prefix + "*"],
                              capture_output=True, text=True).stdout.split()
        if keys:
            subprocess.run(["redis-cli", "-h", host or "127.0.0.1", "-p", port or "6379", "DEL", *keys], capture_output=True)


@pytest.fixture
def client(stack):
    return openai.OpenAI(base_url=stack["base_url"], api_key=stack["key"], max_retries=0, timeout=60)


def test_models_lists_switchboard(client):
    assert [model.id for model in client.models.list().data] == ["switchboard"]


def test_a_completion(client):
    reply = client.chat.completions.create(
        model="anything-goes",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello, I am Ada."},
            {"role": "assistant", "content": "Hello Ada."},
            {"role": "user", "content": "Say hello."},
        ],
    )
    assert reply.object == "chat.completion"
    assert reply.model == "anything-goes"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == FIXED_REPLY
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_a_streamed_completion_with_usage(client):
    stream = client.chat.completions.create(
        model="switchboard", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": [{"type": "text", "text": "Stream a hello."}]}],
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    assert text == FIXED_REPLY
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_errors_are_openai_errors(client, stack):
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="m", messages=[{"role": "assistant", "content": "no question"}])
    assert bad.value.status_code == 400
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=stack["base_url"], api_key="sk_" + "0" * 48, max_retries=0).models.list()


# The receiver check of docs/api.md ("Signed callbacks"), as written there.
import hashlib, hmac  # noqa: E401,E402


def verify(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    t, v1 = fields.get("t", ""), fields.get("v1", "")
    if not t.isdigit() or abs(time.time() - int(t)) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, v1)


def api_post(stack, path, body=None):
    request = urllib.request.Request(
        stack["api"] + path, data=json.dumps(body or {}).encode(), method="POST",
        headers={"Authorization": f"Bearer {stack['key']}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, json.loads(response.read())


def test_generic_webhook_wait_and_a_signed_callback(stack):
    status, answer = api_post(stack, "/webhooks/generic", {"message": "Say hello.", "metadata": {"ticket": "T-1"}, "wait": 30})
    assert status == 200
    assert answer["response"]["text"] == FIXED_REPLY
    assert answer["metadata"] == {"ticket": "T-1"}

    received = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append((self.headers.get("X-Switchboard-Signature"), body))
            self.send_response(204)
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        status, created = api_post(stack, "/webhooks/generic/secret")
        assert status == 201
        secret = created["secret"]
        status, accepted = api_post(stack, "/webhooks/generic", {
            "message": "Call me back.", "metadata": {"ticket": "T-2"},
            "callbackUrl": f"http://127.0.0.1:{server.server_address[1]}/hook"})
        assert status == 202
        deadline = time.time() + 30
        while not received and time.time() < deadline:
            time.sleep(0.1)
        assert received, "the callback arrived"
        signature, body = received[0]
        assert verify(secret, signature, body)
        assert not verify(secret, signature, body + b" ")
        callback = json.loads(body)
        assert callback["messageId"] == accepted["messageId"]
        assert callback["response"]["text"] == FIXED_REPLY
        assert callback["metadata"] == {"ticket": "T-2"}
    finally:
        server.shutdown()
