"""Fixtures for the gateway interoperability tests: real gateway processes, a real Redis, and the
official Centrifugo clients (centrifuge-python for WebSocket, cent for the server API).

SB_GATEWAY_CMD   command that runs a gateway (default: .build/debug/switchboard-bench gateway serve);
                 it is configured through SB_GATEWAY_PORT, SB_GATEWAY_TOKEN_SECRET,
                 SB_GATEWAY_API_KEY, SB_REDIS_URL and SB_GATEWAY_CONFIG_JSON (the `gateway:` section).
SB_TEST_REDIS_URL Redis for the tests (default redis://127.0.0.1:6380/0); each test gets its own prefix.
"""

import json
import os
import shlex
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SECRET = "interop-secret"
API_KEY = "interop-api-key"

NAMESPACES = [
    {
        "name": "chat",
        "presence": True,
        "join_leave": True,
        "history_size": 100,
        "history_ttl": 300,
        "force_recovery": True,
        "allow_subscribe_for_client": True,
        "allow_publish_for_subscriber": True,
        "allow_presence_for_subscriber": True,
        "allow_history_for_subscriber": True,
    },
    {"name": "feed", "allow_subscribe_for_client": True},
    {"name": "secret", "presence": True},
]


def gateway_config(**overrides):
    config = {
        "token_secret": SECRET,
        "api_key": API_KEY,
        "client_queue_max_size": 262144,
        "namespaces": NAMESPACES,
    }
    config.update(overrides)
    return config


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gateway_command():
    if os.environ.get("SB_GATEWAY_CMD"):
        return shlex.split(os.environ["SB_GATEWAY_CMD"])
    for build in ("debug", "release"):
        binary = ROOT / ".build" / build / "switchboard-bench"
        if binary.exists():
            return [str(binary), "gateway", "serve"]
    pytest.skip("no gateway binary: build switchboard-bench or set SB_GATEWAY_CMD")


class Gateway:
    def __init__(self, port, process):
        self.port = port
        self.process = process
        self.ws_url = f"ws://127.0.0.1:{port}/connection/websocket"
        self.api_url = f"http://127.0.0.1:{port}/api"

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def redis_url():
    base = os.environ.get("SB_TEST_REDIS_URL", "redis://127.0.0.1:6380/0")
    prefix = f"sbtest:{uuid.uuid4().hex[:12]}:"
    separator = "&" if "?" in base else "?"
    yield f"{base}{separator}prefix={prefix}"
    # Remove this test's keys (never the shared database as a whole).
    host_port = base.split("://", 1)[1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    keys = subprocess.run(
        ["redis-cli", "-h", host or "127.0.0.1", "-p", port or "6379", "--scan", "--pattern", prefix + "*"],
        capture_output=True, text=True,
    ).stdout.split()
    if keys:
        subprocess.run(["redis-cli", "-h", host or "127.0.0.1", "-p", port or "6379", "DEL", *keys], capture_output=True)


@pytest.fixture
def start_gateway(redis_url, tmp_path):
    started = []

    def start(config=None, redis=True):
        port = free_port()
        env = dict(os.environ)
        env.update({
            "SB_GATEWAY_PORT": str(port),
            "SB_GATEWAY_TOKEN_SECRET": SECRET,
            "SB_GATEWAY_API_KEY": API_KEY,
            "SB_GATEWAY_CONFIG_JSON": json.dumps(config or gateway_config()),
            "SB_REDIS_URL": redis_url if redis else "",
        })
        log = open(tmp_path / f"gateway-{port}.log", "w")
        process = subprocess.Popen(gateway_command(), env=env, stdout=log, stderr=subprocess.STDOUT)
        gateway = Gateway(port, process)
        started.append(gateway)
        deadline = time.time() + 30
        while time.time() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"gateway exited with {process.returncode}: {(tmp_path / f'gateway-{port}.log').read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return gateway
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("gateway did not become healthy")

    yield start
    for gateway in started:
        gateway.stop()
