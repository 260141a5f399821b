"""The OpenAI-compatible endpoint driven by the official `openai` Python package, and the generic
webhook's signed callback checked with the receiver code docs/api.md gives.

A real `switchboard serve` (api + worker + gateway, Tests/Interop/switchboard_stack.py) runs with
its AI provider pointed at the fake model server of Tests/Interop/fake_model.py, so every turn's
reply is known in advance. Both a plain and a streamed completion are asserted, usage included.
"""

import http.server
import json
import threading
import time
import urllib.request

import openai
import pytest

import fake_model
import switchboard_stack
from fake_model import FIXED_REPLY


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # The generic webhook test's receiver listens on loopback.
    with fake_model.running() as model_url, switchboard_stack.serve(
            tmp_path_factory.mktemp("switchboard"), model_url,
            {"SB_CHANNELS_ALLOW_PRIVATE_CALLBACKS": "true"}) as stack:
        yield stack


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
