"""Harness for the browser tests: real Switchboard processes, a real Redis and MariaDB, headless
Chromium from Debian driven by Selenium through the packaged /usr/bin/chromedriver.

- `ScriptedModel`: an OpenAI-compatible model server on loopback whose answers are known in
  advance: the sorter says a message containing "plan" asks for several things, the planner
  answers a two-task graph (summarize, then compose_reply), and every other call streams
  REPLY word by word (slowly when the conversation contains "slowly", so a test can act while
  a turn is still being written).
- `Stack`: `switchboard serve` (api + worker + gateway) on free ports against a throw-away
  database and a Redis key prefix of its own; users are made with the CLI
  (`users create --password-stdin`), as an operator would.
- `chrome()`: a headless Chromium session.

SB_SWITCHBOARD_CMD  the switchboard binary (default: .build/debug/switchboard, then release)
SB_TEST_REDIS_URL / SB_TEST_DATABASE_URL  the servers (defaults: the project's development ones)
"""

import base64
import hashlib
import hmac
import http.server
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The stack helpers the interop suites use (free ports, the binary, the throw-away database and prefix).
sys.path.insert(0, str(ROOT / "Tests" / "Interop"))
from fake_model import EMBEDDING, FakeModel  # noqa: E402
from switchboard_stack import free_port, mariadb_args, redis_cleanup, switchboard  # noqa: E402
SCREENSHOTS = ROOT / "docs" / "screenshots"
REPLY = "Here is the answer from the scripted model: every word arrives in its own chunk, in order, until the end."
PLAN = {
    "reply_node": "answer",
    "tasks": [
        {"id": "sum", "capability": "summarize", "inputs": {"text": "message"}},
        {"id": "answer", "capability": "compose_reply", "depends_on": ["sum"], "inputs": {"text": "message"}},
    ],
}


def wait_until(predicate, timeout=30, interval=0.05, what="condition"):
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(interval)


class ScriptedModel(FakeModel):
    """The interop suites' fake model (JSON answers, `/models`), with scripted, paced chat replies."""

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) or b"{}"
        request = json.loads(raw)
        if self.path.endswith("/embeddings"):
            inputs = request.get("input")
            inputs = inputs if isinstance(inputs, list) else [inputs]
            self._json(200, {"object": "list", "model": "scripted-embed",
                             "data": [{"object": "embedding", "index": i, "embedding": EMBEDDING} for i in range(len(inputs))],
                             "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}})
            return
        messages = request.get("messages") or []
        system = " ".join(str(m.get("content")) for m in messages if m.get("role") == "system")
        everything = raw.decode("utf-8", "replace").lower()
        if "Classify the user's message" in system:
            text = json.dumps({"topic": "general", "language": "en", "web_search": False, "multi": "plan" in everything})
        elif "You split a user's request" in system:
            text = json.dumps(PLAN)
        else:
            text = REPLY
        usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
        if not request.get("stream"):
            self._json(200, {"id": "s-1", "object": "chat.completion", "created": int(time.time()), "model": "scripted",
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                             "usage": usage})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        words = text.split(" ")
        pause = 0.4 if "slowly" in everything else 0.02
        try:
            for i, word in enumerate(words):
                piece = word + (" " if i < len(words) - 1 else "")
                chunk = {"id": "s-1", "object": "chat.completion.chunk", "created": 0, "model": "scripted",
                         "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                time.sleep(pause)
            last = {"id": "s-1", "object": "chat.completion.chunk", "created": 0, "model": "scripted",
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            self.wfile.write(f"data: {json.dumps(last)}\n\n".encode())
            self.wfile.write(f"data: {json.dumps({'id': 's-1', 'object': 'chat.completion.chunk', 'created': 0, 'model': 'scripted', 'choices': [], 'usage': usage})}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # a stopped turn hangs up
        self.close_connection = True


def start_model():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ScriptedModel)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Stack:
    """`switchboard serve` on free ports with its own database and Redis prefix."""

    def __init__(self, logs, model_url, extra_env=None):
        self.base_db = os.environ.get("SB_TEST_DATABASE_URL", "mariadb://switchboard:switchboard@127.0.0.1:3307/switchboard")
        self.redis_url = os.environ.get("SB_TEST_REDIS_URL", "redis://127.0.0.1:6380/0")
        self.db_name = f"switchboard_test_{uuid.uuid4().hex[:12]}"
        self.prefix = f"sbtest:{uuid.uuid4().hex[:12]}:"
        self.http_port = free_port()
        self.gateway_port = free_port()
        self.logs = logs
        parsed = urllib.parse.urlparse(self.base_db)
        database_url = urllib.parse.urlunparse(parsed._replace(path=f"/{self.db_name}"))
        self.env = dict(os.environ)
        self.env.pop("SB_CONFIG", None)
        self.env.update({
            "SB_DATABASE_URL": database_url, "SB_REDIS_URL": self.redis_url, "SB_REDIS_KEY_PREFIX": self.prefix,
            "SB_HTTP_PORT": str(self.http_port), "SB_GATEWAY_PORT": str(self.gateway_port),
            "SB_WORKER_HEALTH_PORT": str(free_port()),
            "SB_HTTP_INTERNAL_PORT": str(free_port()), "SB_GATEWAY_INTERNAL_PORT": str(free_port()),
            "SB_AI_BASE_URL": model_url, "SB_AI_MODEL": "scripted", "SB_AI_EMBED_MODEL": "scripted-embed",
            "SB_LOG_LEVEL": "warning",
            # Three tries per account, then a pause; every test signs in from 127.0.0.1.
            "SB_WEB_LOGIN_PER_ACCOUNT_PER_MINUTE": "3", "SB_WEB_LOGIN_PER_ACCOUNT_BURST": "3",
            "SB_WEB_LOGIN_PER_IP_PER_MINUTE": "600", "SB_WEB_LOGIN_PER_IP_BURST": "200",
        })
        self.env.update(extra_env or {})
        self.process = None
        self.url = f"http://127.0.0.1:{self.http_port}"

    def start(self):
        subprocess.run(mariadb_args(self.base_db) + ["-e", f"CREATE DATABASE `{self.db_name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"], check=True)
        subprocess.run(switchboard() + ["migrate"], env=self.env, check=True, capture_output=True)
        log = open(self.logs / "serve.log", "w")
        self.process = subprocess.Popen(switchboard() + ["serve"], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with {self.process.returncode}: {(self.logs / 'serve.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("serve did not become healthy")
            time.sleep(0.2)

    def create_user(self, password, role="user"):
        """A new user with `password`, made by the CLI with the password on standard input."""
        email = f"web{uuid.uuid4().hex[:8]}@example.com"
        subprocess.run(switchboard() + ["users", "create", "--email", email, "--role", role, "--password-stdin"],
                       env=self.env, input=password + "\n", text=True, check=True, capture_output=True)
        return email

    def cli(self, args, stdin=""):
        """Runs `switchboard ARGS` against this stack with `stdin`; answers the finished process."""
        return subprocess.run(switchboard() + args, env=self.env, input=stdin, text=True, capture_output=True)

    def login(self, email, password):
        """POST /api/v1/auth/login from outside a browser; answers the status."""
        request = urllib.request.Request(self.url + "/api/v1/auth/login", method="POST",
                                         data=json.dumps({"email": email, "password": password}).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        subprocess.run(mariadb_args(self.base_db) + ["-e", f"DROP DATABASE IF EXISTS `{self.db_name}`"], capture_output=True)
        redis_cleanup(self.redis_url, self.prefix)


def chrome():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("SB_CHROMIUM", "/usr/bin/chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1200,800",
                     "--disable-extensions", "--no-first-run", "--lang=en-US"):
        options.add_argument(argument)
    service = Service(executable_path=os.environ.get("SB_CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_script_timeout(60)
    return driver


def screenshot(driver, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / name))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(secret, user, ttl=3600, **claims):
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = {"sub": user, **claims}
    if ttl is not None:
        payload["exp"] = int(time.time()) + ttl
    body = b64url(json.dumps(payload).encode())
    signature = hmac.new(secret.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64url(signature)}"
