"""Live support end to end: real `switchboard api`, `worker` and `gateway` processes (live_harness),
with centrifuge-python as the visitor's and the operator's client."""

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
import urllib.request

import pytest
from cent import AsyncClient, Disconnect, DisconnectRequest
from centrifuge import (
    Client,
    ClientEventHandler,
    DisconnectedContext,
    PublicationContext,
    SubscribedContext,
    SubscriptionEventHandler,
    UnsubscribedContext,
)

import fake_model
from gateway_harness import API_KEY, SECRET
from live_harness import LiveStack, http

pytestmark = pytest.mark.asyncio


@pytest.fixture
def live_stack(redis_url, tmp_path):
    stack = LiveStack(redis_url, tmp_path)
    yield stack
    stack.close()


class Events(SubscriptionEventHandler):
    """Records a subscription's publications (their `data`: the `{type, ts, data}` envelope)."""

    def __init__(self):
        self.items = []
        self.subscribed = []
        self.errors = []
        self.unsubscribed = []
        self.changed = asyncio.Event()

    async def on_publication(self, ctx: PublicationContext) -> None:
        self.items.append(ctx.pub.data)
        self.changed.set()

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed.append(ctx)
        self.changed.set()

    async def on_error(self, ctx) -> None:
        self.errors.append(ctx)
        self.changed.set()

    async def on_unsubscribed(self, ctx: UnsubscribedContext) -> None:
        self.unsubscribed.append(ctx)
        self.changed.set()

    def matching(self, predicate):
        return [item for item in self.items if predicate(item)]

    async def wait_for(self, predicate, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            found = self.matching(predicate)
            if found:
                return found[-1]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching event in time; got {self.items}")
            self.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)


class Disconnects(ClientEventHandler):
    def __init__(self):
        self.contexts = []

    async def on_disconnected(self, ctx: DisconnectedContext) -> None:
        self.contexts.append(ctx)


def is_message(role, content=None):
    return lambda e: e.get("type") == "message" and e["data"].get("role") == role and (content is None or e["data"].get("content") == content)


def is_mode(mode):
    return lambda e: e.get("type") == "mode" and e["data"].get("mode") == mode


def is_notification(kind):
    return lambda e: e.get("type") == "notification" and e["data"].get("kind") == kind


def forged_token(user, secret, ttl=600, **claims):
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": user, "exp": int(time.time()) + ttl, **claims}).encode())
    signature = hmac.new(secret.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(signature)}"


def setup_widget(stack, api, owner_key, operator_email):
    created = http("POST", f"{api.url}/api/v1/widgets", {
        "name": "Shop", "allowedOrigins": ["https://shop.example"], "greeting": "Hi!",
        "limits": {"messagesPerMinute": 600, "messagesPerSession": 500}}, token=owner_key)
    assert created.status == 201, created.json
    widget = created.json
    added = http("POST", f"{api.url}/api/v1/widgets/{widget['id']}/operators", {"email": operator_email}, token=owner_key)
    assert added.status == 201, added.json
    return widget


def open_session(api, widget):
    answer = http("POST", f"{api.url}/api/v1/widget/{widget['publicId']}/sessions", headers={"Origin": "https://shop.example"})
    assert answer.status == 201, answer.json
    return answer.json


class Visitor:
    def __init__(self, gateway_url, session, **client_options):
        self.session = session
        self.client = Client(gateway_url, token=session["realtime"]["token"], **client_options)
        self.messages = Events()
        self.typing = Events()
        self.sub = self.client.new_subscription(session["realtime"]["channels"]["session"], events=self.messages)
        self.typing_sub = self.client.new_subscription(session["realtime"]["channels"]["typing"], events=self.typing)

    async def start(self):
        await self.client.connect()
        await self.sub.subscribe()
        await self.typing_sub.subscribe()
        await wait_subscribed(self.messages)
        await wait_subscribed(self.typing)

    def post(self, api, widget, content):
        return http(
            "POST", f"{api.url}/api/v1/widget/{widget['publicId']}/sessions/{self.session['sessionId']}/messages",
            {"content": content}, token=self.session["sessionToken"], headers={"Origin": "https://shop.example"})


async def wait_subscribed(events, count=1, timeout=30):
    deadline = time.monotonic() + timeout
    while len(events.subscribed) < count:
        if events.errors:
            raise AssertionError(f"subscription failed: {events.errors}")
        if time.monotonic() > deadline:
            raise AssertionError("not subscribed in time")
        await asyncio.sleep(0.05)


async def test_takeover_flow_with_typing_and_handback(live_stack):
    stack = live_stack
    gateway = stack.gateway()
    api = stack.api(gateway)
    stack.worker()
    owner_key = stack.user("owner@example.com", "Owner")
    operator_key = stack.user("olga@example.com", "Olga")
    widget = setup_widget(stack, api, owner_key, "olga@example.com")

    token = http("POST", f"{api.url}/api/v1/realtime/token", token=operator_key)
    assert token.status == 200 and f"widget:operators.{widget['id']}" in token.json["channels"]
    operator = Client(gateway.ws_url, token=token.json["token"])
    notifications = Events()
    operator_notifications = operator.new_subscription(f"widget:operators.{widget['id']}", events=notifications)
    await operator.connect()
    await operator_notifications.subscribe()
    await wait_subscribed(notifications)

    session = open_session(api, widget)
    await notifications.wait_for(is_notification("session_started"))
    visitor = Visitor(gateway.ws_url, session)
    operator_view, operator_typing = Events(), Events()
    session_sub = operator.new_subscription(session["realtime"]["channels"]["session"], events=operator_view)
    typing_sub = operator.new_subscription(session["realtime"]["channels"]["typing"], events=operator_typing)
    try:
        await visitor.start()
        await session_sub.subscribe()
        await typing_sub.subscribe()
        await wait_subscribed(operator_view)
        await wait_subscribed(operator_typing)

        # AI mode: the answer arrives on the session channel; the assistant typed meanwhile.
        asked = visitor.post(api, widget, "Hello, what can you do?")
        assert asked.status == 202 and asked.json["mode"] == "ai" and asked.json["events"].endswith("/events")
        await visitor.messages.wait_for(is_message("visitor", "Hello, what can you do?"))
        answer = await visitor.messages.wait_for(is_message("assistant"), timeout=120)
        assert answer["data"]["content"] and isinstance(answer["ts"], int)
        await visitor.typing.wait_for(lambda e: e["data"]["from"] == "assistant")

        # Handoff: the operators are notified.
        handoff = http("POST", f"{api.url}/api/v1/widget/{widget['publicId']}/sessions/{session['sessionId']}/handoff",
                       token=session["sessionToken"])
        assert handoff.json["mode"] == "waiting"
        await notifications.wait_for(is_notification("handoff"))
        await visitor.messages.wait_for(is_mode("waiting"))

        takeover = http("POST", f"{api.url}/api/v1/widgets/{widget['id']}/sessions/{session['sessionId']}/takeover", token=operator_key)
        assert takeover.status == 200 and takeover.json["mode"] == "human"
        mode = await visitor.messages.wait_for(is_mode("human"))
        assert mode["data"]["operatorName"] == "Olga"

        # Human mode: the visitor's message reaches the operator and starts no AI turn.
        question = visitor.post(api, widget, "Are you a human?")
        assert question.status == 202 and question.json["mode"] == "human" and "events" not in question.json
        note = await notifications.wait_for(lambda e: is_notification("new_message")(e) and e["data"]["preview"] == "Are you a human?")
        assert note["data"]["sessionId"] == session["sessionId"]

        # Typing in both directions, published by the clients themselves.
        await visitor.typing_sub.publish({"type": "typing", "ts": int(time.time() * 1000), "data": {"from": "visitor", "ts": int(time.time() * 1000)}})
        await operator_typing.wait_for(lambda e: e["data"]["from"] == "visitor")
        await typing_sub.publish({"type": "typing", "ts": int(time.time() * 1000), "data": {"from": "operator", "ts": int(time.time() * 1000)}})
        await visitor.typing.wait_for(lambda e: e["data"]["from"] == "operator")

        reply = http("POST", f"{api.url}/api/v1/widgets/{widget['id']}/sessions/{session['sessionId']}/messages",
                     {"content": "Yes, I am Olga."}, token=operator_key)
        assert reply.status == 201
        got = await visitor.messages.wait_for(is_message("operator", "Yes, I am Olga."))
        assert got["data"]["operatorName"] == "Olga"

        # No AI answer came for the human-mode question.
        transcript = http("GET", f"{api.url}/api/v1/widget/{widget['publicId']}/sessions/{session['sessionId']}/messages",
                          token=session["sessionToken"])
        roles = [m["role"] for m in transcript.json["data"]]
        assert roles == ["visitor", "assistant", "visitor", "operator"]

        handback = http("POST", f"{api.url}/api/v1/widgets/{widget['id']}/sessions/{session['sessionId']}/handback", token=operator_key)
        assert handback.json["mode"] == "ai"
        await visitor.messages.wait_for(is_mode("ai"))
        before = len(visitor.messages.matching(is_message("assistant")))
        again = visitor.post(api, widget, "Thanks! One more question.")
        assert again.json["mode"] == "ai"
        await visitor.messages.wait_for(lambda e: len(visitor.messages.matching(is_message("assistant"))) > before, timeout=120)
    finally:
        await visitor.client.disconnect()
        await operator.disconnect()


def read_sse(url, token, timeout=60):
    """The events of a whole SSE stream, until the server ends it: [(event, data), ...]."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Origin": "https://shop.example"})
    events, name = [], "message"
    with urllib.request.urlopen(request, timeout=timeout) as response:
        for raw in response:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line[5:].strip())))
                name = "message"
    return events


async def test_takeover_during_a_slow_ai_turn_keeps_the_ai_text_from_the_visitor(live_stack):
    """A provider that takes seconds per word; the operator takes over while the assistant is
    typing. The turn ends as stopped and no AI text reaches the visitor, neither live nor in the
    transcript, while the operator's reply does."""
    stack = live_stack
    with fake_model.running(word_delay=1.0) as model_url:
        gateway = stack.gateway()
        api = stack.api(gateway)
        stack.worker(SB_AI_BASE_URL=model_url, SB_AI_MODEL="fake-model", SB_AI_EMBED_MODEL="fake-embed")
        owner_key = stack.user("owner@example.com", "Owner")
        stack.user("olga@example.com", "Olga")
        widget = setup_widget(stack, api, owner_key, "olga@example.com")
        session = open_session(api, widget)
        visitor = Visitor(gateway.ws_url, session)
        try:
            await visitor.start()
            asked = visitor.post(api, widget, "Tell me a long story, please.")
            assert asked.status == 202 and asked.json["mode"] == "ai"
            stream = asyncio.get_running_loop().run_in_executor(
                None, read_sse, f"{api.url}{asked.json['events']}", session["sessionToken"])
            # The turn runs: the assistant types while the slow provider streams its words.
            await visitor.typing.wait_for(lambda e: e["data"]["from"] == "assistant")
            takeover = http("POST", f"{api.url}/api/v1/widgets/{widget['id']}/sessions/{session['sessionId']}/takeover", token=owner_key)
            assert takeover.status == 200 and takeover.json["mode"] == "human"
            await visitor.messages.wait_for(is_mode("human"))

            events = await asyncio.wait_for(stream, 60)
            final = events[-1]
            assert final[0] == "error" and final[1].get("code") == "cancelled", events
            assert not any(name == "complete" for name, _ in events)

            reply = http("POST", f"{api.url}/api/v1/widgets/{widget['id']}/sessions/{session['sessionId']}/messages",
                         {"content": "A human here, how can I help?"}, token=owner_key)
            assert reply.status == 201
            await visitor.messages.wait_for(is_message("operator", "A human here, how can I help?"))
            # Past the time the provider needed for its whole answer: still no AI text anywhere.
            await asyncio.sleep(len(fake_model.FIXED_REPLY.split()) * 1.0 + 1)
            assert visitor.messages.matching(is_message("assistant")) == []
            transcript = http("GET", f"{api.url}/api/v1/widget/{widget['publicId']}/sessions/{session['sessionId']}/messages",
                              token=session["sessionToken"])
            assert [m["role"] for m in transcript.json["data"]] == ["visitor", "operator"]
        finally:
            await visitor.client.disconnect()


async def test_cross_boundary_attempts_are_refused(live_stack):
    stack = live_stack
    gateway = stack.gateway()
    api = stack.api(gateway)
    owner_key = stack.user("owner@example.com", "Owner")
    stack.user("olga@example.com", "Olga")
    stranger_key = stack.user("stranger@example.com", "Stranger")
    widget = setup_widget(stack, api, owner_key, "olga@example.com")
    other = setup_widget(stack, api, owner_key, "olga@example.com")
    mine, theirs = open_session(api, widget), open_session(api, widget)

    # HTTP: another widget's session, another visitor's session, a stranger, a disallowed origin.
    base = f"{api.url}/api/v1/widget"
    assert http("GET", f"{base}/{other['publicId']}/sessions/{mine['sessionId']}/messages", token=mine["sessionToken"]).status == 404
    assert http("GET", f"{base}/{widget['publicId']}/sessions/{theirs['sessionId']}/messages", token=mine["sessionToken"]).status == 401
    assert http("GET", f"{api.url}/api/v1/widgets/{widget['id']}/sessions", token=stranger_key).status == 404
    refused = http("GET", f"{base}/{widget['publicId']}/config", headers={"Origin": "https://evil.example"})
    assert refused.status == 403 and refused.json["error"]["code"] == "origin_not_allowed"

    async def subscribe(token, channel):
        client = Client(gateway.ws_url, token=token)
        events = Events()
        sub = client.new_subscription(channel, events=events)
        try:
            await client.connect()
            await sub.subscribe()
            deadline = time.monotonic() + 15
            while not events.subscribed and not events.errors and not events.unsubscribed and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return bool(events.subscribed)
        finally:
            await client.disconnect()

    visitor_token = mine["realtime"]["token"]
    assert await subscribe(visitor_token, mine["realtime"]["channels"]["session"])
    assert not await subscribe(visitor_token, theirs["realtime"]["channels"]["session"])
    assert not await subscribe(visitor_token, theirs["realtime"]["channels"]["typing"])
    assert not await subscribe(visitor_token, f"widget:operators.{widget['id']}")
    stranger = http("POST", f"{api.url}/api/v1/realtime/token", token=stranger_key).json["token"]
    assert not await subscribe(stranger, f"widget:operators.{widget['id']}")
    assert not await subscribe(stranger, mine["realtime"]["channels"]["session"])

    # A token signed with another secret, and an expired one, do not connect.
    caps = [{"channels": [f"widget:operators.{widget['id']}"], "allow": ["sub"]}]
    for bad in (forged_token("user:1", "not-the-secret", caps=caps), forged_token("user:1", SECRET, ttl=-60, caps=caps)):
        disconnects = Disconnects()
        client = Client(gateway.ws_url, token=bad, events=disconnects)
        events = Events()
        sub = client.new_subscription(f"widget:operators.{widget['id']}", events=events)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.connect(), 5)
            await sub.subscribe()
        await asyncio.sleep(1.0)
        assert not events.subscribed
        await client.disconnect()


async def test_visitor_recovers_missed_events_after_reconnect(live_stack):
    stack = live_stack
    gateway = stack.gateway()
    api = stack.api(gateway)
    owner_key = stack.user("owner@example.com", "Owner")
    stack.user("olga@example.com", "Olga")
    widget = setup_widget(stack, api, owner_key, "olga@example.com")
    session = open_session(api, widget)
    visitor = Visitor(gateway.ws_url, session, min_reconnect_delay=1.0, max_reconnect_delay=1.5)
    try:
        await visitor.start()
        base = f"{api.url}/api/v1/widgets/{widget['id']}/sessions/{session['sessionId']}"
        http("POST", f"{base}/takeover", token=owner_key)
        await visitor.messages.wait_for(is_mode("human"))

        # Knock the visitor off (it reconnects after its delay) and reply meanwhile.
        gateway_api = AsyncClient(gateway.api_url, API_KEY)
        await gateway_api.disconnect(DisconnectRequest(
            user=f"visitor:{session['sessionId']}", disconnect=Disconnect(code=3011, reason="force reconnect")))
        for n in range(3):
            assert http("POST", f"{base}/messages", {"content": f"missed {n}"}, token=owner_key).status == 201
        await wait_subscribed(visitor.messages, count=2)
        second = visitor.messages.subscribed[1]
        assert second.was_recovering and second.recovered
        for n in range(3):
            await visitor.messages.wait_for(is_message("operator", f"missed {n}"))
        contents = [e["data"]["content"] for e in visitor.messages.matching(is_message("operator"))]
        assert contents == ["missed 0", "missed 1", "missed 2"]
    finally:
        await visitor.client.disconnect()


async def test_two_api_nodes_and_two_gateway_nodes(live_stack):
    stack = live_stack
    gateway_a, gateway_b = stack.gateway(), stack.gateway()
    api_a, api_b = stack.api(gateway_a), stack.api(gateway_b)
    owner_key = stack.user("owner@example.com", "Owner")
    operator_key = stack.user("olga@example.com", "Olga")
    widget = setup_widget(stack, api_a, owner_key, "olga@example.com")

    # The operator is on node B (api and gateway), the visitor on node A.
    token = http("POST", f"{api_b.url}/api/v1/realtime/token", token=operator_key).json["token"]
    operator = Client(gateway_b.ws_url, token=token)
    notifications = Events()
    notes = operator.new_subscription(f"widget:operators.{widget['id']}", events=notifications)
    await operator.connect()
    await notes.subscribe()
    await wait_subscribed(notifications)

    session = open_session(api_a, widget)
    assert http("GET", f"{api_a.url}/api/v1/widget/{widget['publicId']}/config").json["realtime"]["url"] == gateway_a.ws_url
    visitor = Visitor(gateway_a.ws_url, session)
    try:
        await visitor.start()
        await notifications.wait_for(is_notification("session_started"))
        assert http("POST", f"{api_b.url}/api/v1/widgets/{widget['id']}/sessions/{session['sessionId']}/takeover",
                    token=operator_key).status == 200
        await visitor.messages.wait_for(is_mode("human"))
        visitor.post(api_a, widget, "hello from node A")
        await notifications.wait_for(lambda e: e["data"].get("preview") == "hello from node A")
        http("POST", f"{api_b.url}/api/v1/widgets/{widget['id']}/sessions/{session['sessionId']}/messages",
             {"content": "hello from node B"}, token=operator_key)
        await visitor.messages.wait_for(is_message("operator", "hello from node B"))
    finally:
        await visitor.client.disconnect()
        await operator.disconnect()


async def test_events_through_the_centrifugo_http_api_publisher(live_stack):
    """`realtime.publisher: centrifugo`: the api publishes through the gateway's HTTP API
    (POST /api/publish with X-API-Key) instead of its engine; clients see the same events, with
    history and recovery."""
    stack = live_stack
    gateway = stack.gateway()
    api = stack.api(
        gateway, SB_REALTIME_PUBLISHER="centrifugo", SB_REALTIME_CENTRIFUGO_URL=f"http://127.0.0.1:{gateway.internal_port}",
        SB_REALTIME_CENTRIFUGO_API_KEY=API_KEY)
    owner_key = stack.user("owner@example.com", "Owner")
    stack.user("olga@example.com", "Olga")
    widget = setup_widget(stack, api, owner_key, "olga@example.com")
    session = open_session(api, widget)
    base = f"{api.url}/api/v1/widgets/{widget['id']}/sessions/{session['sessionId']}"
    assert http("POST", f"{base}/takeover", token=owner_key).status == 200
    assert http("POST", f"{base}/messages", {"content": "sent before you connected"}, token=owner_key).status == 201

    # A visitor connecting later reads what was published before from the channel's history.
    visitor = Visitor(gateway.ws_url, session)
    try:
        await visitor.start()
        history = await visitor.sub.history(limit=10)
        kinds = [p.data["type"] for p in history.publications]
        assert kinds == ["mode", "message"]
        http("POST", f"{base}/messages", {"content": "live now"}, token=owner_key)
        await visitor.messages.wait_for(is_message("operator", "live now"))
    finally:
        await visitor.client.disconnect()
