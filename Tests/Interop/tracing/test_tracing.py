"""Traces across processes: a real `switchboard api` and a real `switchboard worker` (separate
processes) export OTLP/HTTP to the receiver of otlp_receiver.py, the worker's model is the fake
model server. One message gives one trace: the api's request span is its root (or continues the
client's `traceparent`), the enqueue is its child, the worker's job span is the enqueue's child,
the pipeline's stages are under the job, provider calls under them, the delivery under the job,
and the api's relay of the final event (trace context in the turn stream) under the delivery.
Both processes flush their spans when SIGTERM stops them."""

import http.server as http_server
import json
import os
import pathlib
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid

import pytest

import fake_model
import otlp_receiver
import switchboard_stack
from switchboard_stack import create_user, free_port, mariadb_args, redis_cleanup, switchboard


def wait_healthy(process, url, log_path, what):
    deadline = time.time() + 90
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}: {pathlib.Path(log_path).read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.time() > deadline:
            raise RuntimeError(f"{what} did not become healthy: {pathlib.Path(log_path).read_text()}")
        time.sleep(0.2)


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    """Runs api and worker with tracing on until every message of the module was answered; then
    stops both (SIGTERM: the exporters flush) and yields what the receiver got."""
    log_dir = tmp_path_factory.mktemp("tracing")
    base_db = os.environ.get("SB_TEST_DATABASE_URL", "mariadb://switchboard:switchboard@127.0.0.1:3307/switchboard")
    redis_url = os.environ.get("SB_TEST_REDIS_URL", "redis://127.0.0.1:6380/0")
    name = f"switchboard_test_{uuid.uuid4().hex[:12]}"
    subprocess.run(mariadb_args(base_db) + ["-e", f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"], check=True)
    database_url = urllib.parse.urlunparse(urllib.parse.urlparse(base_db)._replace(path=f"/{name}"))
    prefix = f"sbtest:{uuid.uuid4().hex[:12]}:"
    processes = []
    try:
        with fake_model.running() as model_url, otlp_receiver.running() as (endpoint, received):
            http_port, health_port = free_port(), free_port()
            env = dict(os.environ)
            env.pop("SB_CONFIG", None)
            for key in [k for k in env if k.startswith("OTEL_")]:
                env.pop(key)
            env.update({
                "SB_DATABASE_URL": database_url, "SB_REDIS_URL": redis_url, "SB_REDIS_KEY_PREFIX": prefix,
                "SB_HTTP_PORT": str(http_port), "SB_WORKER_HEALTH_PORT": str(health_port),
                "SB_AI_BASE_URL": model_url, "SB_AI_MODEL": "fake-model", "SB_AI_EMBED_MODEL": "fake-embed",
                "SB_LOG_LEVEL": "debug", "SB_CHANNELS_ALLOW_PRIVATE_CALLBACKS": "true",
                "SB_TRACING_ENABLED": "true", "SB_TRACING_ENDPOINT": endpoint, "SB_TRACING_SERVICE_NAME": "switchboard-test",
            })
            command = switchboard()
            subprocess.run(command + ["migrate"], env=env, check=True, capture_output=True)
            email, key = create_user(command, env)
            logs = {}
            for role in ("api", "worker"):
                logs[role] = log_dir / f"{role}.log"
                processes.append(subprocess.Popen(command + [role], env=env, stdout=open(logs[role], "w"),
                                                  stderr=subprocess.STDOUT, start_new_session=True))
            api, worker = processes
            http = f"http://127.0.0.1:{http_port}"
            wait_healthy(api, f"{http}/healthz", logs["api"], "api")
            wait_healthy(worker, f"http://127.0.0.1:{health_port}/health", logs["worker"], "worker")

            client_trace = uuid.uuid4().hex
            client_span = uuid.uuid4().hex[:16]
            messages = {
                "plain": send_and_follow(http, key, "Say hello, please.", None),
                "continued": send_and_follow(http, key, "Say hello again.", f"00-{client_trace}-{client_span}-01"),
                "callback": send_with_callback(http, key),
            }
            for process in (api, worker):
                stop(process)
            yield {"received": received, "spans": received.snapshot(), "messages": messages,
                   "client": (client_trace, client_span), "logs": logs}
    finally:
        for process in processes:
            stop(process)
        subprocess.run(mariadb_args(base_db) + ["-e", f"DROP DATABASE IF EXISTS `{name}`"], capture_output=True)
        redis_cleanup(redis_url, prefix)


def send_and_follow(http, key, content, traceparent):
    """Posts a message and reads its event stream to the end; returns (message id, final event)."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if traceparent:
        headers["traceparent"] = traceparent
    request = urllib.request.Request(f"{http}/api/v1/messages", data=json.dumps({"content": content}).encode(),
                                     method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 202
        answer = json.loads(response.read())
    events = urllib.request.Request(http + answer["events"], headers={"Authorization": f"Bearer {key}", "Accept": "text/event-stream"})
    event = None
    with urllib.request.urlopen(events, timeout=120) as stream:
        for raw in stream:
            line = raw.decode().rstrip("\n")
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
                if event in ("complete", "error"):
                    break
    return answer["messageId"], event


def send_with_callback(http, key):
    """A generic webhook message whose reply goes to a callback (a `deliver_reply` job); returns
    its message id once the callback arrived."""
    received = []

    class Receiver(http_server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            received.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self.send_response(204)
            self.end_headers()

    def post(path, body):
        request = urllib.request.Request(f"{http}/api/v1{path}", data=json.dumps(body).encode(), method="POST",
                                         headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    server = http_server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        post("/webhooks/generic/secret", {})
        accepted = post("/webhooks/generic", {"message": "Call me back.",
                                              "callbackUrl": f"http://127.0.0.1:{server.server_address[1]}/hook"})
        deadline = time.time() + 60
        while not received and time.time() < deadline:
            time.sleep(0.1)
        assert received, "the callback arrived"
        return accepted["messageId"]
    finally:
        server.shutdown()


def trace_of(spans, trace_id):
    return [span for span in spans if span["trace_id"] == trace_id]


def one(spans, name, **where):
    found = [s for s in spans if s["name"] == name and all(s.get(k) == v for k, v in where.items())]
    assert len(found) == 1, f"expected one span {name!r} {where}, got {[(s['name'], s['parent_span_id']) for s in spans]}"
    return found[0]


def instance(span):
    return span["resource"].get("service.instance.id")


def post_span(spans):
    posts = [s for s in spans if s["kind"] == "SPAN_KIND_SERVER" and s["attributes"].get("http.request.method") == "POST"
             and s["attributes"].get("url.path") == "/api/v1/messages"]
    assert len(posts) == 1, [(s["name"], s["attributes"]) for s in spans]
    return posts[0]


def check_turn_trace(spans, post):
    """Asserts the parenting of one turn's trace below its POST span; returns the spans by name."""
    api_instance = instance(post)
    enqueue = one(spans, "enqueue turn", parent_span_id=post["span_id"])
    assert enqueue["kind"] == "SPAN_KIND_PRODUCER" and instance(enqueue) == api_instance

    job = one(spans, "job turn", parent_span_id=enqueue["span_id"])
    assert job["kind"] == "SPAN_KIND_CONSUMER"
    worker_instance = instance(job)
    assert worker_instance and worker_instance != api_instance, "the job span comes from another process"
    assert job["resource"]["switchboard.roles"] == "worker" and post["resource"]["switchboard.roles"] == "api"
    assert job["resource"]["service.name"] == post["resource"]["service.name"] == "switchboard-test"

    stages = {name: one(spans, name, parent_span_id=job["span_id"])
              for name in ("pipeline classify", "pipeline plan", "pipeline execute")}
    assert all(instance(s) == worker_instance for s in stages.values())
    tasks = [s for s in spans if s["name"].startswith("task ") and s["parent_span_id"] == stages["pipeline execute"]["span_id"]]
    assert tasks, "each task node has a span under the execute stage"
    by_id = {s["span_id"]: s for s in spans}
    calls = [s for s in spans if s["name"].startswith("ai ")]
    assert calls, "the provider call has a span"
    for call in calls:
        assert call["kind"] == "SPAN_KIND_CLIENT" and call["attributes"]["gen_ai.request.model"] == "fake-model"
        parent = by_id[call["parent_span_id"]]
        assert parent["name"].startswith("task ") or parent["name"].startswith("pipeline "), parent["name"]
    reply_calls = [c for c in calls if by_id[c["parent_span_id"]] in tasks]
    assert reply_calls, "the reply's provider call is under its task node"

    deliver = one(spans, "deliver reply", parent_span_id=job["span_id"])
    assert instance(deliver) == worker_instance
    relayed = [s for s in spans if s["name"] == "turn relayed"]
    assert relayed and all(s["parent_span_id"] == deliver["span_id"] for s in relayed)
    assert all(instance(s) == api_instance for s in relayed), "the api relayed the final event in the same trace"
    # Nothing of the trace dangles: every parent is in the trace, but the POST's own.
    for span in spans:
        if span is not post:
            assert span["parent_span_id"] in by_id, f"{span['name']} has a parent outside the trace"
    return {"post": post, "enqueue": enqueue, "job": job, "deliver": deliver, **stages}


def test_one_message_is_one_trace_across_api_and_worker(traced):
    assert traced["messages"]["plain"][1] == "complete"
    assert traced["received"].bad_requests == 0
    roots = [s for s in traced["spans"] if s["kind"] == "SPAN_KIND_SERVER" and not s["parent_span_id"]
             and s["attributes"].get("url.path") == "/api/v1/messages"]
    assert len(roots) == 1, "the POST without traceparent starts a trace of its own"
    spans = trace_of(traced["spans"], roots[0]["trace_id"])
    check_turn_trace(spans, post_span(spans))


def test_an_incoming_traceparent_is_continued(traced):
    assert traced["messages"]["continued"][1] == "complete"
    client_trace, client_span = traced["client"]
    spans = trace_of(traced["spans"], client_trace)
    post = post_span(spans)
    assert post["parent_span_id"] == client_span
    check_turn_trace(spans, post)


def test_log_lines_carry_the_trace_id(traced):
    client_trace, _ = traced["client"]
    worker_log = traced["logs"]["worker"].read_text()
    assert f"trace_id={client_trace}" in worker_log, worker_log[-2000:]


def test_a_channel_delivery_is_in_the_trace_of_its_turn(traced):
    roots = [s for s in traced["spans"] if s["kind"] == "SPAN_KIND_SERVER" and not s["parent_span_id"]
             and s["attributes"].get("url.path") == "/api/v1/webhooks/generic"]
    assert len(roots) == 1
    spans = trace_of(traced["spans"], roots[0]["trace_id"])
    enqueue = one(spans, "enqueue turn", parent_span_id=roots[0]["span_id"])
    job = one(spans, "job turn", parent_span_id=enqueue["span_id"])
    deliver = one(spans, "deliver reply", parent_span_id=job["span_id"])
    queued = one(spans, "enqueue deliver_reply", parent_span_id=deliver["span_id"])
    delivery_job = one(spans, "job deliver_reply", parent_span_id=queued["span_id"])
    assert delivery_job["attributes"]["messaging.destination.name"] == "delivery"
    sent = one(spans, "deliver webhook", parent_span_id=delivery_job["span_id"])
    assert sent["kind"] == "SPAN_KIND_CLIENT" and instance(sent) == instance(job) != instance(roots[0])
