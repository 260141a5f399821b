"""A real `switchboard serve` (api + worker + gateway) for the interop suites: a throw-away MariaDB
database and a Redis key prefix of its own on the test servers, a user and an API key made with the
CLI, started and stopped around a test module.

SB_SWITCHBOARD_CMD  the switchboard binary (default: .build/debug/switchboard, then release)
SB_TEST_REDIS_URL / SB_TEST_DATABASE_URL  the servers (defaults: the project's development ones)
"""

import contextlib
import os
import pathlib
import shlex
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process, timeout=15):
    """SIGTERM, then SIGKILL if `process` (a Popen, or None) has not exited within `timeout` s."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def switchboard():
    if os.environ.get("SB_SWITCHBOARD_CMD"):
        return shlex.split(os.environ["SB_SWITCHBOARD_CMD"])
    for build in ("debug", "release"):
        binary = ROOT / ".build" / build / "switchboard"
        if binary.exists():
            return [str(binary)]
    raise RuntimeError("no switchboard binary: run `swift build` first or set SB_SWITCHBOARD_CMD")


def mariadb_args(url):
    parsed = urllib.parse.urlparse(url)
    return ["mariadb", "-h", parsed.hostname or "127.0.0.1", "-P", str(parsed.port or 3306),
            "-u", urllib.parse.unquote(parsed.username or ""), f"-p{urllib.parse.unquote(parsed.password or '')}"]


def redis_cleanup(redis_url, prefix):
    """Deletes every key under `prefix` on the Redis of `redis_url`."""
    host_port = redis_url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
    host, _, port = host_port.rpartition(":")
    keys = subprocess.run(["redis-cli", "-h", host or "127.0.0.1", "-p", port or "6379", "--scan", "--pattern", prefix + "*"],
                          capture_output=True, text=True).stdout.split()
    if keys:
        subprocess.run(["redis-cli", "-h", host or "127.0.0.1", "-p", port or "6379", "DEL", *keys], capture_output=True)


def create_user(command, env):
    """A new user and an API key of theirs: (email, key)."""
    email = f"interop{uuid.uuid4().hex[:8]}@example.com"
    subprocess.run(command + ["users", "create", "--email", email], env=env, check=True, capture_output=True)
    key = subprocess.run(command + ["keys", "create", "--user", email], env=env, check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    return email, key


@contextlib.contextmanager
def serve(log_dir, ai_base_url, extra_env=None):
    """Runs `switchboard serve` until the block ends; yields a dict with `http` (the api's base
    URL), `base_url` (its /v1), `api` (its /api/v1), `key`, `email`, `env` and `command`."""
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
        "SB_HTTP_INTERNAL_PORT": str(free_port()), "SB_GATEWAY_INTERNAL_PORT": str(free_port()),
        "SB_AI_BASE_URL": ai_base_url, "SB_AI_MODEL": "fake-model", "SB_AI_EMBED_MODEL": "fake-embed",
        "SB_LOG_LEVEL": "warning",
    })
    env.update(extra_env or {})
    command = switchboard()
    process = None
    log_path = pathlib.Path(log_dir) / "serve.log"
    try:
        subprocess.run(command + ["migrate"], env=env, check=True, capture_output=True)
        email, key = create_user(command, env)
        log = open(log_path, "w")
        process = subprocess.Popen(command + ["serve"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"serve exited with {process.returncode}: {log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("serve did not become healthy")
            time.sleep(0.2)
        http = f"http://127.0.0.1:{http_port}"
        yield {"http": http, "base_url": f"{http}/v1", "api": f"{http}/api/v1", "key": key, "email": email,
               "env": env, "command": command, "log": log_path}
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        subprocess.run(mariadb_args(base_db) + ["-e", f"DROP DATABASE IF EXISTS `{name}`"], capture_output=True)
        redis_cleanup(redis_url, prefix)
