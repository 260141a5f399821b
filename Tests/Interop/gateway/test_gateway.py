"""The gateway against the official Centrifugo clients: centrifuge-python over WebSocket and cent
for the server HTTP API (plus raw `websockets` frames where an exact code must be observed)."""

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from types import SimpleNamespace

import pytest
import websockets
from cent import (
    AsyncClient,
    ChannelsRequest,
    Disconnect,
    DisconnectRequest,
    HistoryRequest,
    InfoRequest,
    PresenceRequest,
    PublishRequest,
)
from centrifuge import (
    Client,
    ClientEventHandler,
    PublicationContext,
    SubscribedContext,
    SubscribingContext,
    SubscriptionEventHandler,
    UnsubscribedContext,
    DisconnectedContext,
)

from gateway_harness import SECRET, API_KEY, gateway_config

pytestmark = pytest.mark.asyncio


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(user, secret=SECRET, ttl=3600, **claims):
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = {"sub": user, **claims}
    if ttl is not None:
        payload["exp"] = int(time.time()) + ttl
    body = b64url(json.dumps(payload).encode())
    signature = hmac.new(secret.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64url(signature)}"


class Recorder(SubscriptionEventHandler):
    def __init__(self):
        self.publications = []
        self.subscribed = []
        self.subscribing = []
        self.unsubscribed = []
        self.errors = []
        self.changed = asyncio.Event()

    async def on_publication(self, ctx: PublicationContext) -> None:
        self.publications.append(ctx.pub)
        self.changed.set()

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed.append(ctx)
        self.changed.set()

    async def on_subscribing(self, ctx: SubscribingContext) -> None:
        self.subscribing.append(ctx)
        self.changed.set()

    async def on_unsubscribed(self, ctx: UnsubscribedContext) -> None:
        self.unsubscribed.append(ctx)
        self.changed.set()

    async def on_error(self, ctx) -> None:
        self.errors.append(ctx)
        self.changed.set()

    async def wait_for(self, predicate, timeout=10):
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("condition not reached in time")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass


class ClientRecorder(ClientEventHandler):
    def __init__(self):
        self.disconnected = []
        self.changed = asyncio.Event()

    async def on_disconnected(self, ctx: DisconnectedContext) -> None:
        self.disconnected.append(ctx)
        self.changed.set()


async def wait_until(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_sdk_receives_api_publications_and_reads_presence_and_history(start_gateway):
    gateway = start_gateway()
    async with subscribed_client(gateway, "42", "chat:room1", token_claims={"info": {"name": "Ada"}}) as c:
        api, client, sub, events = c.api, c.client, c.sub, c.events

        for n in range(3):
            result = await api.publish(PublishRequest(channel="chat:room1", data={"n": n}))
            assert result.offset == n + 1
        await events.wait_for(lambda: len(events.publications) == 3)
        assert [p.data for p in events.publications] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert [p.offset for p in events.publications] == [1, 2, 3]

        presence = await sub.presence()
        assert [info.user for info in presence.clients.values()] == ["42"]
        stats = await sub.presence_stats()
        assert (stats.num_clients, stats.num_users) == (1, 1)
        api_presence = await api.presence(PresenceRequest(channel="chat:room1"))
        assert list(api_presence.presence.keys()) == [client.client_id]

        history = await sub.history(limit=10)
        assert [p.data for p in history.publications] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert history.offset == 3
        api_history = await api.history(HistoryRequest(channel="chat:room1", limit=2, reverse=True))
        assert [p.data for p in api_history.publications] == [{"n": 2}, {"n": 1}]

        # A client publication carries its publisher's info.
        await sub.publish({"from": "sdk"})
        await events.wait_for(lambda: len(events.publications) == 4)
        assert events.publications[3].info.user == "42"

        info = await api.info(InfoRequest())
        assert info.nodes[0].num_clients == 1


async def test_sdk_recovers_missed_publications_after_forced_reconnect(start_gateway):
    gateway = start_gateway()
    async with subscribed_client(gateway, "7", "chat:recover", min_reconnect_delay=1.0, max_reconnect_delay=1.5) as c:
        api, events = c.api, c.events
        await api.publish(PublishRequest(channel="chat:recover", data={"n": 1}))
        await events.wait_for(lambda: len(events.publications) == 1)

        # Force a reconnect (3000-3499: the SDK reconnects after its delay) and publish meanwhile.
        await api.disconnect(DisconnectRequest(user="7", disconnect=Disconnect(code=3011, reason="force reconnect")))
        await asyncio.sleep(0.3)
        for n in (2, 3, 4):
            await api.publish(PublishRequest(channel="chat:recover", data={"n": n}))

        await events.wait_for(lambda: len(events.subscribed) == 2, timeout=15)
        await events.wait_for(lambda: len(events.publications) == 4)
        second = events.subscribed[1]
        assert second.was_recovering and second.recovered
        assert [p.data["n"] for p in events.publications] == [1, 2, 3, 4]

        # Live publications continue after the recovery, without duplicates.
        await api.publish(PublishRequest(channel="chat:recover", data={"n": 5}))
        await events.wait_for(lambda: len(events.publications) == 5)
        assert [p.offset for p in events.publications] == [1, 2, 3, 4, 5]


async def test_sdk_recovers_a_publication_lost_while_the_gateway_pubsub_was_down(start_gateway, private_redis):
    """Redis pub/sub drops what is published while the gateway's subscriber connection is down,
    and no later publication shows the gap. When the connection is back the gateway tells the
    SDK its subscription lost its place (2500), and the SDK resubscribes and recovers it."""
    gateway = start_gateway(redis=private_redis.url)
    async with subscribed_client(gateway, "9", "chat:lost") as c:
        api, events = c.api, c.events
        await api.publish(PublishRequest(channel="chat:lost", data={"n": 1}))
        await events.wait_for(lambda: len(events.publications) == 1)

        # Offset 2 goes into the channel's history the way the publish script puts it there,
        # without reaching the gateway; then its pub/sub connection drops.
        append = (
            "local offset = redis.call('hincrby', KEYS[2], 'o', 1) "
            "redis.call('xadd', KEYS[1], offset .. '-0', 'd', ARGV[1]) return offset"
        )
        cli = ["redis-cli", "-p", str(private_redis.port)]
        appended = subprocess.run(
            [*cli, "EVAL", append, "2", "sb:gw:history:chat:lost", "sb:gw:meta:chat:lost", json.dumps({"data": {"n": 2}})],
            capture_output=True, text=True, check=True)
        assert appended.stdout.strip() == "2"
        killed = subprocess.run([*cli, "CLIENT", "KILL", "TYPE", "pubsub"], capture_output=True, text=True, check=True)
        assert int(killed.stdout.strip()) >= 1

        await events.wait_for(lambda: len(events.publications) == 2, timeout=15)
        # 2500 is not an unsubscribe for the SDK: it goes back to subscribing and recovers.
        assert events.unsubscribed == []
        assert [s.code for s in events.subscribing if s.code >= 2500] == [2500]
        assert events.subscribed[-1].was_recovering and events.subscribed[-1].recovered
        assert [p.data["n"] for p in events.publications] == [1, 2]
        assert [p.offset for p in events.publications] == [1, 2]

        # Live publications go on from there.
        await api.publish(PublishRequest(channel="chat:lost", data={"n": 3}))
        await events.wait_for(lambda: len(events.publications) == 3)
        assert [p.offset for p in events.publications] == [1, 2, 3]


async def test_recovery_reports_false_when_history_no_longer_covers_the_gap(start_gateway):
    config = gateway_config(namespaces=[{
        "name": "chat", "history_size": 2, "history_ttl": 300, "force_recovery": True,
        "allow_subscribe_for_client": True,
    }])
    gateway = start_gateway(config)
    async with subscribed_client(gateway, "8", "chat:small", min_reconnect_delay=1.0, max_reconnect_delay=1.5) as c:
        api, events = c.api, c.events
        await api.publish(PublishRequest(channel="chat:small", data={"n": 1}))
        await events.wait_for(lambda: len(events.publications) == 1)
        await api.disconnect(DisconnectRequest(user="8", disconnect=Disconnect(code=3011, reason="force reconnect")))
        await asyncio.sleep(0.3)
        for n in range(2, 7):
            await api.publish(PublishRequest(channel="chat:small", data={"n": n}))
        await events.wait_for(lambda: len(events.subscribed) == 2, timeout=15)
        assert events.subscribed[1].was_recovering
        assert not events.subscribed[1].recovered


async def test_two_nodes_share_one_redis(start_gateway):
    node_a = start_gateway()
    node_b = start_gateway()
    api_a = AsyncClient(node_a.api_url, API_KEY)
    on_b = Client(node_b.ws_url, token=token("b-user"))
    on_a = Client(node_a.ws_url, token=token("a-user"))
    events_b = Recorder()
    events_a = Recorder()
    sub_b = on_b.new_subscription("chat:cluster", events=events_b)
    sub_a = on_a.new_subscription("chat:cluster", events=events_a)
    try:
        await on_b.connect()
        await on_a.connect()
        await sub_b.subscribe()
        await sub_a.subscribe()
        await sub_b.ready(timeout=5)
        await sub_a.ready(timeout=5)

        await api_a.publish(PublishRequest(channel="chat:cluster", data={"hello": "from A"}))
        await events_b.wait_for(lambda: len(events_b.publications) == 1)
        await events_a.wait_for(lambda: len(events_a.publications) == 1)
        assert events_b.publications[0].data == {"hello": "from A"}

        presence = await api_a.presence(PresenceRequest(channel="chat:cluster"))
        assert sorted(info.user for info in presence.presence.values()) == ["a-user", "b-user"]
        presence_b = await sub_b.presence()
        assert sorted(info.user for info in presence_b.clients.values()) == ["a-user", "b-user"]

        # info and channels through node A answer for both nodes (nodes announce themselves
        # through Redis every few seconds).
        async def both_nodes_known():
            info = await api_a.info(InfoRequest())
            channels = await api_a.channels(ChannelsRequest(pattern="chat:*"))
            counted = channels.channels.get("chat:cluster")
            return len(info.nodes) == 2 and counted is not None and counted.num_clients == 2
        await wait_until(both_nodes_known)

        # A disconnect through node A's API reaches the client on node B.
        await api_a.disconnect(DisconnectRequest(user="b-user"))

        async def gone():
            presence = await api_a.presence(PresenceRequest(channel="chat:cluster"))
            return sorted(info.user for info in presence.presence.values()) == ["a-user"]
        await wait_until(gone)
    finally:
        await on_b.disconnect()
        await on_a.disconnect()
        await api_a.close()


async def connect_raw(gateway, token_value, extra_headers=None):
    ws = await websockets.connect(gateway.ws_url, additional_headers=extra_headers)
    await ws.send(json.dumps({"id": 1, "connect": {"token": token_value}}))
    return ws, json.loads((await ws.recv()).split("\n")[0])


async def close_code(ws, timeout=10):
    """Reads until the server closes the connection; returns its close code."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


@contextlib.asynccontextmanager
async def subscribed_client(gateway, user, channel, token_claims=None, **client_options):
    """An SDK client of `user` connected and subscribed to `channel`, and a server API client;
    both closed afterwards however the test ends."""
    api = AsyncClient(gateway.api_url, API_KEY)
    client = Client(gateway.ws_url, token=token(user, **(token_claims or {})), **client_options)
    events = Recorder()
    sub = client.new_subscription(channel, events=events)
    try:
        await client.connect()
        await sub.subscribe()
        await sub.ready(timeout=5)
        yield SimpleNamespace(api=api, client=client, sub=sub, events=events)
    finally:
        await client.disconnect()
        await api.close()


async def test_expired_token_is_error_109(start_gateway):
    gateway = start_gateway()
    ws, reply = await connect_raw(gateway, token("1", ttl=-10))
    assert reply["error"]["code"] == 109
    await ws.close()

    # The SDK reacts to 109 by fetching a fresh token and connects with it.
    calls = []

    async def get_token():
        calls.append(1)
        return token("1")

    client = Client(gateway.ws_url, token=token("1", ttl=-10), get_token=get_token)
    try:
        await client.connect()
        await client.ready(timeout=5)
        assert calls
    finally:
        await client.disconnect()


async def test_bad_signature_is_disconnect_3500(start_gateway):
    gateway = start_gateway()
    ws = await websockets.connect(gateway.ws_url)
    await ws.send(json.dumps({"id": 1, "connect": {"token": token("1", secret="wrong")}}))
    assert await close_code(ws) == 3500

    recorder = ClientRecorder()
    client = Client(gateway.ws_url, token=token("1", secret="wrong"), events=recorder)
    try:
        await client.connect()
        deadline = time.monotonic() + 5
        while not recorder.disconnected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert recorder.disconnected and recorder.disconnected[0].code == 3500
    finally:
        await client.disconnect()


async def test_permission_denied_103_and_unknown_namespace_102(start_gateway):
    gateway = start_gateway()
    ws, reply = await connect_raw(gateway, token("5"))
    assert "connect" in reply
    await ws.send(json.dumps({"id": 2, "subscribe": {"channel": "secret:vault"}}))
    assert json.loads(await ws.recv())["error"]["code"] == 103
    await ws.send(json.dumps({"id": 3, "subscribe": {"channel": "nowhere:x"}}))
    assert json.loads(await ws.recv())["error"]["code"] == 102
    # A subscription token with a wrong signature is also 103; a valid one opens the private channel.
    await ws.send(json.dumps({"id": 4, "subscribe": {"channel": "secret:vault", "token": token("5", secret="x", channel="secret:vault")}}))
    assert json.loads(await ws.recv())["error"]["code"] == 103
    await ws.send(json.dumps({"id": 5, "subscribe": {"channel": "secret:vault", "token": token("5", ttl=None, channel="secret:vault")}}))
    assert json.loads(await ws.recv()) == {"id": 5, "subscribe": {}}
    await ws.close()

    client = Client(gateway.ws_url, token=token("5"))
    denied = Recorder()
    unknown = Recorder()
    sub_denied = client.new_subscription("secret:other", events=denied)
    sub_unknown = client.new_subscription("nowhere:y", events=unknown)
    try:
        await client.connect()
        await sub_denied.subscribe()
        await sub_unknown.subscribe()
        await denied.wait_for(lambda: denied.unsubscribed)
        await unknown.wait_for(lambda: unknown.unsubscribed)
        assert denied.unsubscribed[0].code == 103
        assert unknown.unsubscribed[0].code == 102
    finally:
        await client.disconnect()


async def test_slow_or_oversized_clients_are_cut_off_while_others_keep_receiving(start_gateway):
    gateway = start_gateway(gateway_config(max_message_size=4096, client_queue_max_size=131072))
    async with subscribed_client(gateway, "good", "feed:ticker") as good:
        api, events = good.api, good.events
        # An oversized frame closes that connection.
        big, _ = await connect_raw(gateway, token("big"))
        await big.send(json.dumps({"id": 2, "publish": {"channel": "feed:ticker", "data": "x" * 10000}}))
        await close_code(big)  # closed, not left open (a timeout fails the test)

        # A subscriber that stops reading a busy channel is disconnected as slow (3008), while the
        # good client keeps getting every ticker publication.
        slow = await websockets.connect(gateway.ws_url, max_queue=1)
        await slow.send(json.dumps({"id": 1, "connect": {"token": token("slow")}}))
        await slow.recv()
        await slow.send(json.dumps({"id": 2, "subscribe": {"channel": "feed:firehose"}}))
        await slow.recv()

        def slow_disconnects():
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{gateway.internal_port}/metrics").read().decode()
            return "switchboard_gateway_slow_disconnects_total 1" in metrics

        payload = "y" * 60000
        sent = 0
        while not slow_disconnects():
            assert sent < 1000, "the slow client was never disconnected"
            await api.publish(PublishRequest(channel="feed:firehose", data={"n": sent, "p": payload}))
            await api.publish(PublishRequest(channel="feed:ticker", data={"n": sent}))
            sent += 1

        assert await close_code(slow) == 3008

        for n in range(sent, sent + 20):
            await api.publish(PublishRequest(channel="feed:ticker", data={"n": n}))
        await events.wait_for(lambda: len(events.publications) == sent + 20, timeout=30)
        assert [p.data["n"] for p in events.publications] == list(range(sent + 20))


async def test_a_client_flooding_commands_is_disconnected_while_others_keep_receiving(start_gateway):
    gateway = start_gateway(gateway_config(client_command_rate=20, client_command_burst=20))
    async with subscribed_client(gateway, "good", "feed:ticker") as good:
        api, events = good.api, good.events
        flooder, _ = await connect_raw(gateway, token("flooder"))
        for n in range(2, 202):
            await flooder.send(json.dumps({"id": n, "ping": {}}))
        assert await close_code(flooder) == 3013

        for n in range(10):
            await api.publish(PublishRequest(channel="feed:ticker", data={"n": n}))
        await events.wait_for(lambda: len(events.publications) == 10)
        assert [p.data["n"] for p in events.publications] == list(range(10))


async def test_api_rejects_a_wrong_key(start_gateway):
    gateway = start_gateway()
    api = AsyncClient(gateway.api_url, "wrong")
    try:
        with pytest.raises(Exception) as failure:
            await api.publish(PublishRequest(channel="feed:x", data={}))
        assert "Unauthorized" in type(failure.value).__name__ or "401" in str(failure.value)
    finally:
        await api.close()


async def test_a_gateway_out_of_descriptors_serves_again_once_some_are_freed(start_gateway, tmp_path):
    """More connections than the process may open: the gateway accepts until it runs out of
    descriptors (and says so), the rest wait in the kernel's queue, and once the clients go it
    accepts again and serves a WebSocket client as before."""
    gateway = start_gateway(descriptors=128)
    idle = []
    try:
        for _ in range(300):
            idle.append(socket.create_connection(("127.0.0.1", gateway.port), timeout=5))
        log = tmp_path / f"gateway-{gateway.port}.log"
        deadline = time.monotonic() + 10
        while "cannot accept connections" not in log.read_text():
            assert time.monotonic() < deadline, "the gateway never ran out of descriptors"
            await asyncio.sleep(0.1)
    finally:
        for connection in idle:
            connection.close()
    ws = await websockets.connect(gateway.ws_url, open_timeout=15)
    await ws.send(json.dumps({"id": 1, "connect": {"token": token("1")}}))
    assert "connect" in json.loads(await asyncio.wait_for(ws.recv(), 10))
    await ws.close()
    assert gateway.process.poll() is None


async def test_websocket_upgrade_checks_the_origin(start_gateway):
    gateway = start_gateway(gateway_config(allowed_origins=["https://app.example"]))
    ws = await websockets.connect(gateway.ws_url, origin="https://app.example")
    await ws.send(json.dumps({"id": 1, "connect": {"token": token("1")}}))
    assert "connect" in json.loads(await ws.recv())
    await ws.close()
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(gateway.ws_url, origin="https://evil.example")


async def test_a_plain_websocket_client_reads_the_unidirectional_endpoint_and_recovers(start_gateway):
    """No SDK: `websockets` (which answers WebSocket pings by itself) on /connection/uni_websocket
    with the connect request in the URL, publications from cent, and a reconnect that names its
    last position in `subs` to get what it missed."""
    gateway = start_gateway()
    uni_url = gateway.ws_url.replace("/connection/websocket", "/connection/uni_websocket")
    channel_token = token("uni", channels=["chat:uni"])

    def url(request):
        return uni_url + "?cf_connect=" + urllib.parse.quote(json.dumps(request))

    api = AsyncClient(gateway.api_url, API_KEY)
    try:
        async with websockets.connect(url({"token": channel_token})) as ws:
            connect = json.loads(await asyncio.wait_for(ws.recv(), 10))["connect"]
            subscription = connect["subs"]["chat:uni"]
            await api.publish(PublishRequest(channel="chat:uni", data={"n": 1}))
            push = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert push["channel"] == "chat:uni" and push["pub"]["data"] == {"n": 1}
            offset, epoch = push["pub"]["offset"], subscription["epoch"]

        for n in (2, 3):
            await api.publish(PublishRequest(channel="chat:uni", data={"n": n}))
        request = {"token": channel_token, "subs": {"chat:uni": {"recover": True, "offset": offset, "epoch": epoch}}}
        async with websockets.connect(uni_url) as ws:
            await ws.send(json.dumps(request))
            recovered = json.loads(await asyncio.wait_for(ws.recv(), 10))["connect"]["subs"]["chat:uni"]
            assert recovered["recovered"] is True
            assert [p["data"]["n"] for p in recovered["publications"]] == [2, 3]
    finally:
        await api.close()
