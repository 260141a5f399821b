"""The fault suite (docs/reliability.md): a live Switchboard stack on this machine -- two `switchboard
api` nodes, two `switchboard worker`s, one `switchboard gateway`, a private redis-server (AOF on,
appendfsync always) and a private mariadbd, both on their own ports and directories -- under a
steady, bounded load of messages with SSE readers and centrifuge-python subscribers attached, and
a paced fake model (Tests/Interop/fake_model.py) that answers `Reply to: <question>`. One fault
at a time is injected while the load runs; for each it reports accepted, refused, stored,
completed, delivered, duplicated and lost messages and how long recovery took, and fails (exit 1)
when a message is lost or duplicated, a request got a 500 or no answer, or a process never came
back.

  python scripts/faults.py [--short] [--load N] [--only FAULT[,FAULT]] [--down S] [--keep DIR] [--json FILE]

Faults: api_kill, worker_kill, redis_restart, mariadb_restart, gateway_restart, redis_stall.
"""

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "Interop"))

import aiohttp  # noqa: E402
from centrifuge import Client, PublicationContext, SubscribedContext, SubscriptionEventHandler  # noqa: E402

import fake_model  # noqa: E402
from switchboard_stack import free_port, stop_process, switchboard  # noqa: E402

FAULTS = ["api_kill", "worker_kill", "redis_restart", "mariadb_restart", "gateway_restart", "redis_stall"]
PREFIX = "sbfaults:"
SECRET = "faults-gateway-secret"
API_KEY = "faults-gateway-api-key"
ORIGIN = "https://shop.example"
DB_USER, DB_PASSWORD, DB_NAME = "switchboard", "switchboard", "switchboard"


def log(message):
    print(f"[faults {time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready after {timeout}s")


def http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


# ---------------------------------------------------------------- private servers


class PrivateRedis:
    """A redis-server of the suite's own: AOF on with appendfsync always, so a kill -9 loses no
    acknowledged write; its directory (and AOF) survives restarts."""

    def __init__(self, directory):
        self.directory = directory
        self.port = free_port()
        self.process = None
        directory.mkdir(parents=True, exist_ok=True)

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
             "--logfile", str(self.directory / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.cli("PING").strip() == "PONG", 30, "redis-server")

    def cli(self, *args):
        result = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, timeout=10)
        return result.stdout

    def signal(self, number):
        os.kill(self.process.pid, number)

    def kill(self):
        self.process.kill()
        self.process.wait()

    def stop(self):
        stop_process(self.process, timeout=15)

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"


class PrivateMariaDB:
    """A mariadbd of the suite's own with a `switchboard` user and database; stops and starts on
    the same data directory."""

    def __init__(self, directory):
        self.directory = directory
        self.port = free_port()
        # Unix socket paths are limited to 108 bytes.
        self.socket = f"/tmp/sbfaults-{uuid.uuid4().hex[:8]}.sock"
        self.process = None
        (directory / "data").mkdir(parents=True, exist_ok=True)
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={directory}/data", "--user=root",
                        "--auth-root-authentication-method=socket", "--skip-test-db"],
                       check=True, capture_output=True)

    def start(self):
        self.process = subprocess.Popen(
            ["mariadbd", "--no-defaults", "--user=root", f"--datadir={self.directory}/data", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.socket}", f"--pid-file={self.directory}/mariadb.pid",
             f"--log-error={self.directory}/error.log", "--skip-name-resolve", "--skip-log-bin",
             "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
             "--max-connections=300", "--innodb-buffer-pool-size=64M"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: subprocess.run(["mariadb-admin", "--no-defaults", f"--socket={self.socket}", "-uroot", "ping"],
                                          capture_output=True).returncode == 0, 60, "mariadbd")

    def create_database(self):
        self.sql(f"""
            CREATE DATABASE IF NOT EXISTS `{DB_NAME}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
            CREATE USER IF NOT EXISTS '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}';
            GRANT ALL PRIVILEGES ON `{DB_NAME}`.* TO '{DB_USER}'@'127.0.0.1';
            FLUSH PRIVILEGES;""", database=None)

    def sql(self, statement, database=DB_NAME):
        args = ["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "-N", "-B", "-e", statement]
        if database:
            args.append(database)
        result = subprocess.run(args, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"mariadb: {result.stderr.strip()}")
        return [line.split("\t") for line in result.stdout.splitlines() if line]

    def stop(self):
        stop_process(self.process, timeout=60)

    @property
    def url(self):
        return f"mariadb://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{self.port}/{DB_NAME}"


# ---------------------------------------------------------------- switchboard processes


class Node:
    """One switchboard process; `start()` again after a kill reuses its port."""

    def __init__(self, stack, kind, name, **env):
        self.stack, self.kind, self.name, self.extra = stack, kind, name, env
        self.port = free_port()
        # The server APIs and metrics listener of api and gateway nodes (loopback, one per node).
        self.internal_port = free_port()
        self.process = None
        self.starts = 0

    @property
    def health_url(self):
        return f"http://127.0.0.1:{self.port}" + ("/health" if self.kind == "worker" else "/healthz")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait=True):
        env = self.stack.env(**self.extra)
        env.update({"api": {"SB_HTTP_PORT": str(self.port), "SB_HTTP_INTERNAL_PORT": str(self.internal_port)},
                    "gateway": {"SB_GATEWAY_PORT": str(self.port), "SB_GATEWAY_INTERNAL_PORT": str(self.internal_port)},
                    "worker": {"SB_WORKER_HEALTH_PORT": str(self.port),
                               "SB_WORKER_ID": f"{self.name}-{self.starts}"}}[self.kind])
        self.starts += 1
        log_file = open(self.stack.directory / f"{self.name}.log", "a")
        log_file.write(f"==== start {self.starts} at {time.strftime('%H:%M:%S')}\n")
        log_file.flush()
        self.process = subprocess.Popen(switchboard() + [self.kind], env=env, stdin=subprocess.DEVNULL,
                                        stdout=log_file, stderr=subprocess.STDOUT)
        log_file.close()
        if wait:
            self.wait_healthy()

    def wait_healthy(self, timeout=90):
        def healthy():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode} (log: {self.stack.directory / (self.name + '.log')})")
            return http_ok(self.health_url)
        wait_until(healthy, timeout, self.name)

    @property
    def worker_id(self):
        return f"{self.name}-{self.starts - 1}"

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def kill9(self):
        self.process.kill()
        self.process.wait()

    def stop(self, timeout=30):
        stop_process(self.process, timeout=timeout)


class Stack:
    def __init__(self, directory, model_url):
        self.directory = directory
        self.model_url = model_url
        self.redis = PrivateRedis(directory / "redis")
        self.mariadb = PrivateMariaDB(directory / "mariadb")
        self.config = directory / "switchboard.json"
        self.config.write_text("{}")
        self.gateway = Node(self, "gateway", "gateway")
        self.apis = [Node(self, "api", "api-a"), Node(self, "api", "api-b")]
        self.workers = [Node(self, "worker", "worker-1"), Node(self, "worker", "worker-2")]

    def env(self, **extra):
        env = dict(os.environ)
        env.update({
            "SB_CONFIG": str(self.config), "SB_ENV": "development", "SB_LOG_LEVEL": "info",
            "SB_REDIS_URL": self.redis.url, "SB_REDIS_KEY_PREFIX": PREFIX, "SB_DATABASE_URL": self.mariadb.url,
            "SB_DATABASE_MIGRATE_ON_START": "false",
            "SB_GATEWAY_TOKEN_SECRET": SECRET, "SB_GATEWAY_API_KEY": API_KEY,
            "SB_REALTIME_PUBLIC_URL": f"ws://127.0.0.1:{self.gateway.port}/connection/websocket",
            "SB_AI_BASE_URL": self.model_url, "SB_AI_MODEL": "fake-model", "SB_AI_EMBED_MODEL": "fake-embed",
            "SB_LIMITS_PER_IP_PER_MINUTE": "0", "SB_LIMITS_PER_USER_PER_MINUTE": "0",
            "SB_LIVE_SESSIONS_PER_IP_PER_MINUTE": "1000", "SB_LIVE_MESSAGES_PER_MINUTE": "10000",
            "SB_LIVE_MESSAGES_PER_SESSION": "100000", "SB_LIVE_WIDGET_MESSAGES_PER_MINUTE": "100000",
            "SB_QUOTAS_MESSAGES_PER_DAY": "0", "SB_QUOTAS_TOKENS_PER_MONTH": "0",
            "SB_STARTUP_WAIT_SECONDS": "60",
            "SB_WORKER_QUEUES": "ai,delivery", "SB_WORKER_CONCURRENCY": "4", "SB_WORKER_VISIBILITY_TIMEOUT": "5",
        })
        env.update(extra)
        return env

    def run(self, *args):
        result = subprocess.run(switchboard() + list(args), env=self.env(), capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"switchboard {' '.join(args)}: {result.stdout}{result.stderr}")
        return result.stdout.strip()

    def start(self):
        self.redis.start()
        self.mariadb.start()
        self.mariadb.create_database()
        self.run("migrate")
        email = f"faults{uuid.uuid4().hex[:6]}@example.com"
        self.run("users", "create", "--email", email)
        self.key = self.run("keys", "create", "--user", email).splitlines()[-1].strip()
        self.gateway.start()
        for node in self.apis + self.workers:
            node.start(wait=False)
        for node in self.apis + self.workers:
            node.wait_healthy()

    def nodes(self):
        return [self.gateway, *self.apis, *self.workers]

    def close(self):
        for node in reversed(self.nodes()):
            with contextlib.suppress(Exception):
                if node.process is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(node.process.pid, signal.SIGCONT)
                node.stop(timeout=10)
        with contextlib.suppress(Exception):
            if self.redis.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    self.redis.signal(signal.SIGCONT)
            self.redis.stop()
        with contextlib.suppress(Exception):
            self.mariadb.stop()
        with contextlib.suppress(OSError):
            os.unlink(self.mariadb.socket)


# ---------------------------------------------------------------- the load


class Message:
    def __init__(self, phase, number, kind):
        self.phase, self.kind = phase, kind
        self.tag = f"faults {phase} {kind} {number} {uuid.uuid4().hex[:6]}"
        self.id = None
        self.events_path = None
        self.session = None
        self.sent_at = None
        self.accepted_at = None
        self.refusals = []          # (status or "connect"/"reset"/"timeout", json_error?)
        self.completes = 0
        self.completed_at = None
        self.final_error = None
        self.reply = None           # SSE reply text at `complete`
        self.duplicate_events = 0   # SSE entries seen twice
        self.reconnects = 0
        self.restarts = 0           # `status {stage: restarted}` seen: the turn ran again
        self.sse_done = False

    @property
    def expected(self):
        return f"Reply to: {self.tag}"


class WidgetSubscriber(SubscriptionEventHandler):
    """A visitor's session channel on the gateway: the assistant replies it receives (by content),
    and how each (re)subscription went."""

    def __init__(self, session):
        self.session = session
        self.replies = {}
        self.subscriptions = []
        self.client = None

    async def on_publication(self, ctx: PublicationContext) -> None:
        data = ctx.pub.data or {}
        if data.get("type") == "message" and (data.get("data") or {}).get("role") == "assistant":
            content = data["data"].get("content")
            self.replies[content] = self.replies.get(content, 0) + 1

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscriptions.append({"was_recovering": ctx.was_recovering, "recovered": ctx.recovered})


class Load:
    def __init__(self, stack, args):
        self.stack, self.args = stack, args
        self.messages = []
        self.inflight = 0
        self.next_node = {}
        self.sse_on = {node.name: 0 for node in stack.apis}
        self.subscribers = []
        self.problems = []          # 500s, non-JSON errors, hangs
        self.attempts = {}          # (phase, node, outcome) -> POSTs

    def pick(self, purpose):
        """The api nodes in turn (POSTs and SSE streams each), as a client behind DNS round robin
        sees them: a dead node is found out by its refused connection, never known in advance."""
        self.next_node[purpose] = self.next_node.get(purpose, -1) + 1
        return self.stack.apis[self.next_node[purpose] % len(self.stack.apis)]

    async def setup(self, session):
        api = self.stack.apis[0]
        async with session.post(f"{api.url}/api/v1/widgets", headers=self.auth(), json={
                "name": "Faults", "allowedOrigins": [ORIGIN], "greeting": "Hi!",
                "limits": {"messagesPerMinute": 10000, "messagesPerSession": 100000}}) as response:
            assert response.status == 201, await response.text()
            self.widget = await response.json()
        for _ in range(self.args.sessions):
            async with session.post(f"{api.url}/api/v1/widget/{self.widget['publicId']}/sessions", headers={"Origin": ORIGIN}) as response:
                assert response.status == 201, await response.text()
                visitor = await response.json()
            subscriber = WidgetSubscriber(visitor)
            subscriber.client = Client(f"ws://127.0.0.1:{self.stack.gateway.port}/connection/websocket",
                                       token=visitor["realtime"]["token"], min_reconnect_delay=0.2, max_reconnect_delay=2.0)
            subscription = subscriber.client.new_subscription(visitor["realtime"]["channels"]["session"], events=subscriber)
            await subscriber.client.connect()
            await subscription.subscribe()
            self.subscribers.append(subscriber)
        deadline = time.monotonic() + 30
        while any(not s.subscriptions for s in self.subscribers):
            if time.monotonic() > deadline:
                raise RuntimeError("widget subscribers did not subscribe")
            await asyncio.sleep(0.1)

    def auth(self):
        return {"Authorization": f"Bearer {self.stack.key}"}

    async def send(self, session, message):
        """POSTs the message until one node accepts it: the same Idempotency-Key on every attempt
        (API messages), so a retry after a lost answer is not stored twice. Widget messages have no
        idempotency key, so they are retried only when the connection was refused (never sent)."""
        message.sent_at = time.monotonic()
        for attempt in range(self.args.attempts):
            api = self.pick("post")
            if message.kind == "api":
                url, body = f"{api.url}/api/v1/messages", {"content": message.tag}
                headers = {**self.auth(), "Idempotency-Key": message.tag.replace(" ", "-")}
            else:
                message.session = self.subscribers[hash(message.tag) % len(self.subscribers)]
                visitor = message.session.session
                url = f"{api.url}/api/v1/widget/{self.widget['publicId']}/sessions/{visitor['sessionId']}/messages"
                body = {"content": message.tag}
                headers = {"Authorization": f"Bearer {visitor['sessionToken']}", "Origin": ORIGIN}
            retry_safe = message.kind == "api"
            outcome = "error"
            try:
                async with session.post(url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=self.args.request_timeout)) as response:
                    text = await response.text()
                    outcome = str(response.status)
                    if response.status == 202:
                        answer = json.loads(text)
                        message.id = answer["messageId"]
                        message.events_path = answer["events"]
                        message.accepted_at = time.monotonic()
                        self.count(message, api, outcome)
                        return True
                    json_error = False
                    with contextlib.suppress(ValueError, TypeError, AttributeError):
                        error = json.loads(text)["error"]
                        json_error = isinstance(error.get("code"), str) and error.get("status") == response.status
                    message.refusals.append((response.status, json_error))
                    if response.status >= 500 and response.status != 503 or not json_error:
                        self.problems.append(f"{message.phase}: POST answered {response.status} {text[:200]!r}")
                    retry_safe = retry_safe or response.status in (429, 503)
            except aiohttp.ClientConnectorError:
                outcome = "refused connection"
                message.refusals.append(("connect", True))
                retry_safe = True
            except asyncio.TimeoutError:
                outcome = "no answer"
                message.refusals.append(("timeout", False))
                self.problems.append(f"{message.phase}: POST to {api.name} had no answer in {self.args.request_timeout}s")
            except aiohttp.ClientError as error:
                message.refusals.append(("reset", False))
                log(f"{message.phase}: POST to {api.name} failed: {error!r}")
            self.count(message, api, outcome)
            if not retry_safe:
                return False
            await asyncio.sleep(0.5 * (attempt + 1))
        return False

    def count(self, message, node, outcome):
        key = (message.phase, node.name, outcome)
        self.attempts[key] = self.attempts.get(key, 0) + 1

    async def follow(self, session, message, deadline):
        """Reads the turn's SSE stream to its final event, resuming with Last-Event-ID on another
        api node when the connection breaks."""
        seen, last_id, text = set(), None, ""
        node = self.pick("sse")
        if message.kind == "api":
            headers = self.auth()
        else:
            headers = {"Authorization": f"Bearer {message.session.session['sessionToken']}", "Origin": ORIGIN}
        while time.monotonic() < deadline() and not message.sse_done:
            request_headers = dict(headers)
            if last_id:
                request_headers["Last-Event-ID"] = last_id
            counted = False
            try:
                timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=30)
                async with session.get(node.url + message.events_path, headers=request_headers, timeout=timeout) as response:
                    if response.status == 204:
                        message.sse_done = True
                        break
                    if response.status != 200:
                        body = await response.text()
                        if response.status >= 500 and response.status != 503:
                            self.problems.append(f"{message.phase}: GET events answered {response.status} {body[:200]!r}")
                        raise aiohttp.ClientError(f"status {response.status}")
                    self.sse_on[node.name] += 1
                    counted = True
                    event = {}
                    async for raw in response.content:
                        line = raw.decode().rstrip("\r\n")
                        if line.startswith(":"):
                            continue
                        if line:
                            field, _, value = line.partition(":")
                            event[field] = value[1:] if value.startswith(" ") else value
                            continue
                        if "id" in event:
                            if event["id"] in seen:
                                message.duplicate_events += 1
                            seen.add(event["id"])
                            last_id = event["id"]
                        kind, data = event.get("event"), json.loads(event.get("data") or "{}")
                        event = {}
                        if kind == "status" and data.get("stage") == "restarted":
                            message.restarts += 1
                            text = ""
                        elif kind == "chunk":
                            text += data.get("text", "")
                        elif kind == "complete":
                            message.completes += 1
                            if message.completes == 1:
                                message.completed_at = time.monotonic()
                                message.reply = text
                            message.sse_done = True
                        elif kind == "error":
                            message.final_error = data
                            message.sse_done = True
                    if message.sse_done:
                        break
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
                pass
            finally:
                if counted:
                    self.sse_on[node.name] -= 1
            if not message.sse_done:
                message.reconnects += 1
                await asyncio.sleep(0.3)
                node = next(n for n in self.stack.apis if n is not node)

    async def one(self, session, message, deadline):
        self.inflight += 1
        try:
            if await self.send(session, message):
                await self.follow(session, message, deadline)
        finally:
            self.inflight -= 1

    async def run(self, session, phase, tasks, recovery_deadline):
        """Sends messages at `--load` per second (at most `--inflight` unfinished) until cancelled."""
        interval = 1.0 / self.args.load
        number = 0
        while True:
            if self.inflight < self.args.inflight:
                number += 1
                kind = "widget" if number % 3 == 0 else "api"
                message = Message(phase, number, kind)
                self.messages.append(message)
                tasks.append(asyncio.create_task(self.one(session, message, recovery_deadline)))
            await asyncio.sleep(interval)


# ---------------------------------------------------------------- faults


async def inject(name, stack, load):
    """Injects one fault; returns (seconds the fault lasted, note)."""
    if name == "api_kill":
        victim = stack.apis[0]
        deadline = time.monotonic() + 20
        while load.sse_on[victim.name] == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        readers = load.sse_on[victim.name]
        started = time.monotonic()
        victim.kill9()
        await asyncio.sleep(load.args.down)
        victim.start(wait=False)
        await asyncio.to_thread(victim.wait_healthy)
        return time.monotonic() - started, f"kill -9 {victim.name} with {readers} SSE reader(s) on it; restarted after {load.args.down}s"
    if name == "worker_kill":
        victim = stack.workers[0]
        pending = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pending = await asyncio.to_thread(pending_jobs, stack, victim.worker_id)
            if pending > 0:
                break
            await asyncio.sleep(0.05)
        started = time.monotonic()
        victim.kill9()
        await asyncio.sleep(load.args.down)
        victim.start(wait=False)
        await asyncio.to_thread(victim.wait_healthy)
        return time.monotonic() - started, f"kill -9 {victim.name} holding {pending} turn job(s); restarted under a new id after {load.args.down}s"
    if name == "redis_restart":
        started = time.monotonic()
        stack.redis.kill()
        await asyncio.sleep(load.args.down)
        await asyncio.to_thread(stack.redis.start)
        return time.monotonic() - started, f"kill -9 redis-server (AOF, appendfsync always), started again after {load.args.down}s"
    if name == "mariadb_restart":
        started = time.monotonic()
        await asyncio.to_thread(stack.mariadb.stop)
        await asyncio.sleep(load.args.down)
        await asyncio.to_thread(stack.mariadb.start)
        return time.monotonic() - started, f"mariadbd stopped (SIGTERM), started again after {load.args.down}s"
    if name == "gateway_restart":
        started = time.monotonic()
        await asyncio.to_thread(stack.gateway.stop)
        await asyncio.sleep(load.args.down)
        stack.gateway.start(wait=False)
        await asyncio.to_thread(stack.gateway.wait_healthy)
        return time.monotonic() - started, f"gateway stopped (SIGTERM) with {len(load.subscribers)} subscribers, started again after {load.args.down}s"
    if name == "redis_stall":
        started = time.monotonic()
        stack.redis.signal(signal.SIGSTOP)
        await asyncio.sleep(2)
        stack.redis.signal(signal.SIGCONT)
        return time.monotonic() - started, "SIGSTOP redis-server for 2 s, then SIGCONT"
    raise ValueError(name)


def pending_jobs(stack, consumer):
    """Turn jobs the consumer holds (XPENDING on the `ai` queue)."""
    out = stack.redis.cli("XPENDING", f"{PREFIX}queue:ai", "workers").split("\n")
    # Summary form: count, min id, max id, then consumer/count pairs.
    for index, value in enumerate(out):
        if value.strip() == consumer and index + 1 < len(out):
            with contextlib.suppress(ValueError):
                return int(out[index + 1])
    return 0


def count_phase(stack, load, phase, fault_at, restored_at, duration_note):
    messages = [m for m in load.messages if m.phase == phase]
    accepted = [m for m in messages if m.id is not None]
    refused = [m for m in messages if m.id is None]
    refusals = [r for m in messages for r in m.refusals]
    ids = ",".join(str(m.id) for m in accepted) or "0"
    stored_rows = stack.mariadb.sql(f"SELECT content, COUNT(*) FROM messages WHERE role = 'user' AND content LIKE 'faults {phase} %' GROUP BY content")
    stored = {content: int(count) for content, count in stored_rows}
    replies_rows = stack.mariadb.sql(f"SELECT reply_to_id, COUNT(*) FROM messages WHERE role = 'assistant' AND reply_to_id IN ({ids}) GROUP BY reply_to_id")
    replies = {int(rid): int(count) for rid, count in replies_rows}
    status_rows = stack.mariadb.sql(f"SELECT id, status FROM messages WHERE id IN ({ids})")
    statuses = {int(mid): status for mid, status in status_rows}

    completed = [m for m in accepted if m.completes >= 1]
    delivered_sse = [m for m in completed if m.reply == m.expected]
    garbled = [m for m in completed if m.reply != m.expected]
    widget = [m for m in accepted if m.kind == "widget"]
    gateway_seen = {m.tag: m.session.replies.get(m.expected, 0) for m in widget}
    delivered_gateway = [m for m in widget if gateway_seen[m.tag] >= 1]
    duplicates = []
    for m in accepted:
        if m.completes > 1 or m.duplicate_events:
            duplicates.append(f"{m.tag}: SSE saw complete x{m.completes}, {m.duplicate_events} repeated entries")
        if stored.get(m.tag, 0) > 1:
            duplicates.append(f"{m.tag}: stored {stored[m.tag]} times")
        if replies.get(m.id, 0) > 1:
            duplicates.append(f"{m.tag}: {replies[m.id]} replies stored")
        if m.kind == "widget" and gateway_seen[m.tag] > 1:
            duplicates.append(f"{m.tag}: gateway delivered the reply {gateway_seen[m.tag]} times")
    for m in refused:
        if stored.get(m.tag, 0) > 1:
            duplicates.append(f"{m.tag} (refused): stored {stored[m.tag]} times")
    lost = [m for m in accepted if m.completes == 0]
    lost_gateway = [m for m in widget if m.completes and gateway_seen[m.tag] == 0]
    first_after = [m for m in messages if m.sent_at and m.sent_at >= fault_at and m.completed_at]
    recovery = min((m.completed_at - fault_at for m in first_after), default=None)
    first_accept = min((m.accepted_at - fault_at for m in messages if m.accepted_at and m.sent_at >= fault_at), default=None)
    drain = max((m.completed_at - fault_at for m in accepted if m.completed_at and m.sent_at < restored_at), default=None)
    latencies = sorted(m.completed_at - m.accepted_at for m in completed)
    by_status = {}
    for status, _ in refusals:
        by_status[str(status)] = by_status.get(str(status), 0) + 1
    return {
        "fault": phase, "note": duration_note, "sent": len(messages), "accepted": len(accepted),
        "refused": len(refused), "refusals": by_status, "stored": sum(1 for m in messages if stored.get(m.tag)),
        "completed": len(completed), "delivered": len(delivered_sse), "widget": len(widget),
        "gateway_delivered": len(delivered_gateway), "duplicated": len(duplicates), "lost": len(lost),
        "gateway_lost": len(lost_gateway), "garbled": len(garbled),
        "reconnects": sum(m.reconnects for m in messages),
        "restarted_turns": sum(1 for m in messages if m.restarts),
        "posts": {f"{node} {outcome}": n for (p, node, outcome), n in sorted(load.attempts.items()) if p == phase},
        "recovery_s": recovery, "first_accept_s": first_accept, "drain_s": drain,
        "turn_p50_s": latencies[len(latencies) // 2] if latencies else None,
        "turn_max_s": latencies[-1] if latencies else None,
        "details": {
            "duplicates": duplicates,
            "lost": [f"{m.tag} (id {m.id}, db status {statuses.get(m.id)}, sse error {m.final_error}, reconnects {m.reconnects})" for m in lost],
            "gateway_lost": [f"{m.tag} (id {m.id})" for m in lost_gateway],
            "garbled": [f"{m.tag}: {m.reply!r}" for m in garbled],
            "db_not_completed": [f"{m.tag} (id {m.id}): {statuses.get(m.id)}" for m in completed if statuses.get(m.id) != "completed"],
        },
    }


def fmt(value):
    return "-" if value is None else f"{value:.1f}"


def print_table(results):
    header = ["fault", "sent", "accepted", "refused", "errors answered (retried)", "stored", "completed", "delivered", "gw deliv.", "duplicated", "lost",
              "first 202 s", "recovery s", "drain s", "turn p50 s"]
    rows = [[r["fault"], r["sent"], r["accepted"], r["refused"],
             ", ".join(f"{n}× {status}" for status, n in sorted(r["refusals"].items())) or "-", r["stored"], r["completed"], r["delivered"],
             f"{r['gateway_delivered']}/{r['widget']}", r["duplicated"], r["lost"] + r["gateway_lost"],
             fmt(r["first_accept_s"]), fmt(r["recovery_s"]), fmt(r["drain_s"]), fmt(r["turn_p50_s"])] for r in results]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


async def main_async(args, stack):
    results, problems = [], []
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        load = Load(stack, args)
        await load.setup(session)
        faults = args.only or FAULTS
        seen_subscriptions = {id(s): len(s.subscriptions) for s in load.subscribers}
        # A phase without a fault first: the steady state the others are compared with.
        for phase in ["baseline", *faults]:
            log(f"{phase}: load {args.load}/s for {args.steady}s before the fault, {args.after}s after")
            recovery_deadline = [time.monotonic() + 10 ** 6]
            phase_tasks = []
            runner = asyncio.create_task(load.run(session, phase, phase_tasks, lambda: recovery_deadline[0]))
            await asyncio.sleep(args.steady)
            fault_at = time.monotonic()
            if phase == "baseline":
                note, lasted = "no fault", 0.0
            else:
                lasted, note = await inject(phase, stack, load)
            restored_at = time.monotonic()
            log(f"{phase}: {note} (fault lasted {lasted:.1f}s)")
            await asyncio.sleep(args.after)
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
            recovery_deadline[0] = time.monotonic() + args.recovery
            done, pending = await asyncio.wait(phase_tasks, timeout=args.recovery + 15) if phase_tasks else (set(), set())
            for task in pending:
                task.cancel()
            for task in done:
                if task.exception():
                    problems.append(f"{phase}: load task failed: {task.exception()!r}")
            # Gateway deliveries trail the stream's `complete` slightly.
            widget = [m for m in load.messages if m.phase == phase and m.kind == "widget" and m.completes]
            wait_end = time.monotonic() + 15
            while time.monotonic() < wait_end and any(m.session.replies.get(m.expected, 0) == 0 for m in widget):
                await asyncio.sleep(0.2)
            for node in stack.nodes():
                if not node.alive() or not await asyncio.to_thread(http_ok, node.health_url):
                    problems.append(f"{phase}: {node.name} is not healthy after the recovery window")
            result = await asyncio.to_thread(count_phase, stack, load, phase, fault_at, restored_at, note)
            result["fault_lasted_s"] = lasted
            resubscribed = [s.subscriptions[-1] for s in load.subscribers if len(s.subscriptions) > seen_subscriptions.get(id(s), 0)]
            result["resubscribed"] = len(resubscribed)
            result["recovered_by_offset"] = sum(1 for c in resubscribed if c["was_recovering"] and c["recovered"])
            seen_subscriptions.update({id(s): len(s.subscriptions) for s in load.subscribers})
            results.append(result)
            log(f"{phase}: sent {result['sent']}, accepted {result['accepted']}, refused {result['refused']} {result['refusals']}, "
                f"stored {result['stored']}, completed {result['completed']}, delivered {result['delivered']}, "
                f"gateway {result['gateway_delivered']}/{result['widget']}, duplicated {result['duplicated']}, "
                f"lost {result['lost']} (+{result['gateway_lost']} on the gateway), recovery {fmt(result['recovery_s'])}s, "
                f"drain {fmt(result['drain_s'])}s; gateway subscribers resubscribed {result['resubscribed']}, "
                f"recovered by offset/epoch {result['recovered_by_offset']}")
            log(f"{phase}: POSTs {result['posts']}, SSE reconnects {result['reconnects']}, turns restarted {result['restarted_turns']}")
            for key, items in result["details"].items():
                for item in items[:10]:
                    log(f"   {key}: {item}")
        problems.extend(load.problems)
        for subscriber in load.subscribers:
            with contextlib.suppress(Exception):
                await subscriber.client.disconnect()
    return results, problems


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="small load, short phases (what ./scripts/test runs)")
    parser.add_argument("--load", type=float, help="messages per second (default 2, --short 1.5)")
    parser.add_argument("--only", help="comma-separated faults: " + ", ".join(FAULTS))
    parser.add_argument("--down", type=float, help="seconds a killed or stopped process stays down (default 5, --short 2)")
    parser.add_argument("--keep", help="directory for the servers' data and logs (kept); default a temporary one, removed on success")
    parser.add_argument("--json", help="write the results as JSON to this file")
    args = parser.parse_args()
    args.only = [f.strip() for f in args.only.split(",")] if args.only else None
    for fault in args.only or []:
        if fault not in FAULTS:
            parser.error(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
    args.load = args.load or (1.5 if args.short else 2.0)
    args.steady, args.after, down = (4, 6, 2) if args.short else (20, 30, 5)
    args.down = args.down or down
    args.recovery = 60 if args.short else 120
    args.inflight = 12 if args.short else 24
    args.sessions = 3 if args.short else 6
    args.attempts = 8
    args.request_timeout = 15

    # A watchdog's SIGTERM still stops every process the suite started (the `finally` below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    directory = pathlib.Path(args.keep or tempfile.mkdtemp(prefix="sb-faults-"))
    directory.mkdir(parents=True, exist_ok=True)
    log(f"data and logs in {directory}")
    started = time.time()
    with fake_model.running(word_delay=0.12, echo=True) as model_url:
        stack = Stack(directory, model_url)
        try:
            stack.start()
            results, problems = asyncio.run(main_async(args, stack))
        finally:
            stack.close()
    failed = bool(problems) or any(r["lost"] or r["duplicated"] or r["gateway_lost"] or r["garbled"] for r in results)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print()
    print(f"fault suite: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, commit {commit}, "
          f"binary {' '.join(switchboard())}, load {args.load}/s, load average {os.getloadavg()[0]:.1f}, "
          f"{os.cpu_count()} cores, {platform.platform()}")
    print_table(results)
    for problem in problems:
        print(f"!! {problem}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"started": started, "commit": commit, "args": vars(args),
                                                       "results": results, "problems": problems}, indent=2, default=str))
    if failed:
        print(f"FAILED: lost, duplicated or garbled messages, or problems above (logs in {directory})")
        sys.exit(1)
    print("OK: nothing lost, nothing duplicated")
    if not args.keep:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
