"""Fixtures for the gateway interoperability tests (see gateway_harness.py)."""

import json
import os
import resource
import subprocess
import time
import urllib.request
import uuid
from types import SimpleNamespace

import pytest

from gateway_harness import API_KEY, SECRET, Gateway, free_port, gateway_command, gateway_config


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

    def start(config=None, redis=True, descriptors=None):
        """`redis`: True for the test's prefix on the shared Redis, False for the in-memory
        engine, or a URL of a Redis of the test's own. `descriptors`: the process's limit on
        open files (RLIMIT_NOFILE), when a test runs it out of them."""
        port = free_port()
        internal_port = free_port()
        # `switchboard gateway` reads its `gateway:` section from the configuration file (JSON is
        # YAML); the bench harness reads SB_GATEWAY_CONFIG_JSON.
        config_file = tmp_path / f"gateway-{port}.json"
        config_file.write_text(json.dumps({"gateway": config or gateway_config()}))
        env = dict(os.environ)
        env.update({
            "SB_CONFIG": str(config_file),
            "SB_GATEWAY_PORT": str(port),
            "SB_GATEWAY_INTERNAL_PORT": str(internal_port),
            "SB_GATEWAY_TOKEN_SECRET": SECRET,
            "SB_GATEWAY_API_KEY": API_KEY,
            "SB_GATEWAY_CONFIG_JSON": json.dumps(config or gateway_config()),
            "SB_REDIS_URL": (redis if isinstance(redis, str) else redis_url) if redis else "",
        })
        log = open(tmp_path / f"gateway-{port}.log", "w")
        limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (descriptors, descriptors))) if descriptors else None
        process = subprocess.Popen(gateway_command(), env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=limit)
        gateway = Gateway(port, internal_port, process)
        started.append(gateway)
        deadline = time.time() + 30
        while time.time() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"gateway exited with {process.returncode}: {(tmp_path / f'gateway-{port}.log').read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{internal_port}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return gateway
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("gateway did not become healthy")

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of the test's own on a free port (for tests that kill its clients); its URL."""
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path), "--logfile", str(tmp_path / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 10
    while subprocess.run(["redis-cli", "-p", str(port), "PING"], capture_output=True, text=True).stdout.strip() != "PONG":
        if time.time() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError("the test's redis-server did not start")
        time.sleep(0.05)
    yield SimpleNamespace(port=port, url=f"redis://127.0.0.1:{port}/0")
    process.kill()
    process.wait()
