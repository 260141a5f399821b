"""Harness for the live-support interoperability tests: real `switchboard api`, `worker` and
`gateway` processes on one Redis and one throw-away MariaDB database, with the local model
server (scripts/llm, SB_TEST_AI_URL) answering as the AI. Visitors and operators are the official
centrifuge-python client; HTTP calls use urllib.

SB_TEST_DATABASE_URL  MariaDB (default mariadb://switchboard:switchboard@127.0.0.1:3307/switchboard);
                      each stack creates and drops its own `switchboard_test_live<random>` database.
SB_TEST_AI_URL        the model server's base URL (default http://127.0.0.1:8089/v1).
"""

import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from gateway_harness import API_KEY, SECRET, free_port, gateway_command
from switchboard_stack import stop_process


def switchboard_binary():
    return gateway_command()[0]


class HTTPAnswer:
    def __init__(self, status, body, headers):
        self.status = status
        self.headers = headers
        try:
            self.json = json.loads(body) if body else {}
        except ValueError:
            self.json = {}


def http(method, url, body=None, token=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return HTTPAnswer(response.status, response.read(), dict(response.headers))
    except urllib.error.HTTPError as error:
        return HTTPAnswer(error.code, error.read(), dict(error.headers))


class Node:
    def __init__(self, kind, port, process, log):
        self.kind = kind
        self.port = port
        self.process = process
        self.log = log

    def stop(self):
        stop_process(self.process, timeout=15)


class LiveStack:
    """One database and Redis prefix; any number of api, gateway and worker nodes over them."""

    def __init__(self, redis_url, tmp_path):
        self.redis_url = redis_url
        self.tmp_path = tmp_path
        base = os.environ.get("SB_TEST_DATABASE_URL", "mariadb://switchboard:switchboard@127.0.0.1:3307/switchboard")
        parsed = urllib.parse.urlparse(base)
        self.db_user, self.db_password = parsed.username or "root", parsed.password or ""
        self.db_host, self.db_port = parsed.hostname or "127.0.0.1", parsed.port or 3306
        self.db_name = f"switchboard_test_live{uuid.uuid4().hex[:10]}"
        self.database_url = parsed._replace(path="/" + self.db_name).geturl()
        self.nodes = []
        self.config = tmp_path / "live.json"
        self.config.write_text("{}")
        self.mysql(f"CREATE DATABASE `{self.db_name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")

    def mysql(self, statement):
        subprocess.run(
            ["mysql", "-h", self.db_host, "-P", str(self.db_port), "-u", self.db_user, f"-p{self.db_password}", "-e", statement],
            check=True, capture_output=True)

    def env(self, **extra):
        env = dict(os.environ)
        env.update({
            "SB_CONFIG": str(self.config),
            "SB_ENV": "development",
            "SB_REDIS_URL": self.redis_url,
            "SB_DATABASE_URL": self.database_url,
            "SB_GATEWAY_TOKEN_SECRET": SECRET,
            "SB_GATEWAY_API_KEY": API_KEY,
            "SB_AI_BASE_URL": os.environ.get("SB_TEST_AI_URL", "http://127.0.0.1:8089/v1"),
            "SB_AI_MODEL": "smollm2-135m",
            "SB_AI_EMBED_MODEL": "all-minilm-l6-v2",
            "SB_LIVE_SESSIONS_PER_IP_PER_MINUTE": "1000",
            "SB_LIMITS_PER_IP_PER_MINUTE": "0",
            "SB_LIMITS_PER_USER_PER_MINUTE": "0",
            "SB_STARTUP_WAIT_SECONDS": "10",
        })
        env.update({key: str(value) for key, value in extra.items()})
        return env

    def run(self, *args, **extra):
        result = subprocess.run([switchboard_binary(), *args], env=self.env(**extra), capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"switchboard {' '.join(args)} failed: {result.stdout}{result.stderr}")
        return result.stdout.strip()

    def user(self, email, name):
        self.run("users", "create", "--email", email, "--name", name)
        return self.run("keys", "create", "--user", email).splitlines()[-1].strip()

    def start(self, kind, health_path=None, **extra):
        port = free_port()
        internal_port = free_port()
        settings = dict(extra)
        if kind == "api":
            settings["SB_HTTP_PORT"] = port
            settings["SB_HTTP_INTERNAL_PORT"] = internal_port
        elif kind == "gateway":
            settings["SB_GATEWAY_PORT"] = port
            settings["SB_GATEWAY_INTERNAL_PORT"] = internal_port
        elif kind == "worker":
            settings["SB_WORKER_HEALTH_PORT"] = port
        log_path = self.tmp_path / f"{kind}-{port}.log"
        log = open(log_path, "w")
        process = subprocess.Popen([switchboard_binary(), kind], env=self.env(**settings), stdout=log, stderr=subprocess.STDOUT)
        node = Node(kind, port, process, log_path)
        node.internal_port = internal_port
        self.nodes.append(node)
        path = health_path or "/healthz"
        deadline = time.time() + 60
        while time.time() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{kind} exited with {process.returncode}: {log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as response:
                    if response.status == 200:
                        return node
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{kind} did not become healthy: {log_path.read_text()}")

    def gateway(self):
        node = self.start("gateway")
        node.ws_url = f"ws://127.0.0.1:{node.port}/connection/websocket"
        node.api_url = f"http://127.0.0.1:{node.internal_port}/api"
        return node

    def api(self, gateway, **extra):
        node = self.start("api", SB_REALTIME_PUBLIC_URL=gateway.ws_url, **extra)
        node.url = f"http://127.0.0.1:{node.port}"
        return node

    def worker(self, **extra):
        return self.start("worker", health_path="/health", SB_WORKER_QUEUES="ai,delivery", SB_WORKER_CONCURRENCY=4, **extra)

    def close(self):
        for node in reversed(self.nodes):
            node.stop()
        try:
            self.mysql(f"DROP DATABASE IF EXISTS `{self.db_name}`")
        except subprocess.CalledProcessError:
            pass
