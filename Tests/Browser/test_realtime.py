"""web/realtime.js, the pages' Centrifugo v2 client, in headless Chromium against real
`switchboard gateway` processes on a real Redis: connect with a token, subscribe, publish from
the page and from the server API, presence, join/leave, ping/pong, token refresh before `exp`
through the callback, recovery of missed publications by offset/epoch after a disconnect, and
reconnecting by itself (backoff with jitter) across a gateway restart."""

import functools
import http.server
import json
import os
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid

import pytest

from browser_harness import ROOT, free_port, jwt, redis_cleanup, switchboard, wait_until
from switchboard_stack import stop_process

SECRET = "browser-realtime-secret"
API_KEY = "browser-realtime-api-key"
NAMESPACES = [{
    "name": "chat", "presence": True, "join_leave": True, "history_size": 100, "history_ttl": 300, "force_recovery": True,
    "allow_subscribe_for_client": True, "allow_publish_for_subscriber": True, "allow_presence_for_subscriber": True,
    "allow_history_for_subscriber": True,
}]


class Pages(http.server.SimpleHTTPRequestHandler):
    """Serves the test page and web/realtime.js from another origin than the gateway's port."""

    def log_message(self, *args):
        pass

    def translate_path(self, path):
        path = path.split("?", 1)[0]
        if path == "/realtime.js":
            return str(ROOT / "web" / "realtime.js")
        return str(ROOT / "Tests" / "Browser" / "pages" / path.lstrip("/"))


@pytest.fixture(scope="module")
def pages():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class Gateway:
    def __init__(self, tmp_path):
        self.port = free_port()
        self.internal_port = free_port()
        self.prefix = f"sbtest:{uuid.uuid4().hex[:12]}:"
        self.redis_url = os.environ.get("SB_TEST_REDIS_URL", "redis://127.0.0.1:6380/0")
        self.tmp_path = tmp_path
        self.process = None
        config = {"token_secret": SECRET, "api_key": API_KEY, "ping_interval": 1, "pong_timeout": 5, "namespaces": NAMESPACES}
        self.config_file = tmp_path / "gateway.json"
        self.config_file.write_text(json.dumps({"gateway": config}))
        self.ws_url = f"ws://127.0.0.1:{self.port}/connection/websocket"

    def start(self):
        env = dict(os.environ)
        env.update({"SB_CONFIG": str(self.config_file), "SB_GATEWAY_PORT": str(self.port),
                    "SB_GATEWAY_INTERNAL_PORT": str(self.internal_port), "SB_GATEWAY_TOKEN_SECRET": SECRET,
                    "SB_GATEWAY_API_KEY": API_KEY, "SB_REDIS_URL": self.redis_url, "SB_REDIS_KEY_PREFIX": self.prefix,
                    "SB_LOG_LEVEL": "warning"})
        log = open(self.tmp_path / f"gateway-{time.time()}.log", "w")
        self.process = subprocess.Popen(switchboard() + ["gateway"], env=env, stdout=log, stderr=subprocess.STDOUT)

        def healthy():
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as response:
                    return response.status == 200
            except OSError:
                return False
        wait_until(healthy, what="a healthy gateway")
        return self

    def stop(self):
        stop_process(self.process, timeout=10)

    def api(self, method, body):
        request = urllib.request.Request(f"http://127.0.0.1:{self.internal_port}/api/{method}", data=json.dumps(body).encode(),
                                         headers={"X-API-Key": API_KEY, "Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


@pytest.fixture
def gateway(tmp_path):
    gateway = Gateway(tmp_path).start()
    yield gateway
    gateway.stop()
    redis_cleanup(gateway.redis_url, gateway.prefix)


@pytest.fixture
def page(browser, pages):
    browser.get(pages + "/realtime.html")
    wait_until(lambda: browser.execute_script("return !!(window.SBRealtime && window.T)"), what="the test page")
    return browser


def log(page, name):
    return page.execute_script("return T.logs[arguments[0]]", name)


def pubs(page, name, channel):
    return page.execute_script("return T.logs[arguments[0]].pubs[arguments[1]]", name, channel)


def connected_count(page, name):
    return sum(1 for event in log(page, name)["events"] if event[0] == "connected")


def call(page, script, *args):
    result = page.execute_async_script(
        "var done = arguments[arguments.length - 1]; T.call(done, (function () {" + script + "}).apply(null, arguments));", *args)
    assert "error" not in result, result
    return result["ok"]


def test_connect_subscribe_publish_presence_and_join_leave(page, gateway):
    page.execute_script("T.make('ada', arguments[0], arguments[1]); T.subscribe('ada', 'chat:room'); T.clients.ada.connect()",
                        gateway.ws_url, jwt(SECRET, "42", info={"name": "Ada"}))
    wait_until(lambda: log(page, "ada")["subscribed"], what="ada subscribed")
    assert page.execute_script("return T.clients.ada.state") == "connected"
    assert page.execute_script("return T.clients.ada.clientId")

    # From the server API and from the page itself, in order, with offsets.
    for n in range(2):
        gateway.api("publish", {"channel": "chat:room", "data": {"n": n}})
    call(page, "return T.clients.ada.publish('chat:room', {from: 'page'})")
    wait_until(lambda: len(pubs(page, "ada", "chat:room")) == 3, what="three publications")
    received = pubs(page, "ada", "chat:room")
    assert [p["data"] for p in received] == [{"n": 0}, {"n": 1}, {"from": "page"}]
    assert [p["offset"] for p in received] == [1, 2, 3]
    assert received[2]["user"] == "42"

    # A second user joins: presence lists both, the first sees the join and then the leave.
    page.execute_script("T.make('bob', arguments[0], arguments[1]); T.subscribe('bob', 'chat:room'); T.clients.bob.connect()",
                        gateway.ws_url, jwt(SECRET, "43"))
    wait_until(lambda: log(page, "bob")["subscribed"], what="bob subscribed")
    presence = call(page, "return T.clients.ada.presence('chat:room')")
    assert sorted(info["user"] for info in presence.values()) == ["42", "43"]
    stats = call(page, "return T.clients.ada.presenceStats('chat:room')")
    assert (stats["num_clients"], stats["num_users"]) == (2, 2)
    wait_until(lambda: "43" in log(page, "ada")["joins"], what="the join")
    page.execute_script("T.clients.bob.disconnect()")
    wait_until(lambda: "43" in log(page, "ada")["leaves"], what="the leave")
    history = call(page, "return T.clients.ada.history('chat:room', {limit: 10})")
    assert [p["data"] for p in history["publications"]] == [{"n": 0}, {"n": 1}, {"from": "page"}]


def test_it_answers_pings_and_refreshes_its_token_before_exp(page, gateway):
    # A token that expires in 3 s: the client asks the callback for a new one in time (each
    # later token lives a little longer), and stays connected past the first token's end.
    first_expiry = int(time.time()) + 3
    tokens = [jwt(SECRET, "7", ttl=3)] + [jwt(SECRET, "7", ttl=3 + 2 * i) for i in range(1, 12)]
    page.execute_script("T.make('eve', arguments[0], arguments[1]); T.tokens.eve = arguments[2]; T.subscribe('eve', 'chat:r');"
                        "T.clients.eve.connect()", gateway.ws_url, tokens[0], tokens[1:])
    wait_until(lambda: log(page, "eve")["subscribed"], what="subscribed")
    wait_until(lambda: page.execute_script("return T.clients.eve.stats.refreshes") >= 2 and time.time() > first_expiry + 1,
               timeout=30, what="refreshes past the first token's expiry")
    stats = page.execute_script("return T.clients.eve.stats")
    assert stats["connects"] == 1, "never disconnected"
    assert stats["pings"] >= 1 and stats["pongs"] == stats["pings"]
    assert log(page, "eve")["tokenCalls"] >= 2
    gateway.api("publish", {"channel": "chat:r", "data": "still here"})
    wait_until(lambda: [p["data"] for p in pubs(page, "eve", "chat:r")] == ["still here"], what="a publication after refreshing")


def test_missed_publications_are_recovered_after_a_disconnect(page, gateway):
    page.execute_script("T.make('ann', arguments[0], arguments[1]); T.subscribe('ann', 'chat:log'); T.clients.ann.connect()",
                        gateway.ws_url, jwt(SECRET, "5"))
    wait_until(lambda: log(page, "ann")["subscribed"], what="subscribed")
    gateway.api("publish", {"channel": "chat:log", "data": 1})
    wait_until(lambda: len(pubs(page, "ann", "chat:log")) == 1, what="the first publication")
    page.execute_script("T.clients.ann.disconnect()")
    for n in (2, 3, 4):
        gateway.api("publish", {"channel": "chat:log", "data": n})
    page.execute_script("T.clients.ann.connect()")
    wait_until(lambda: len(log(page, "ann")["subscribed"]) == 2, what="subscribed again")
    again = log(page, "ann")["subscribed"][1]
    assert again["wasRecovering"] and again["recovered"]
    wait_until(lambda: len(pubs(page, "ann", "chat:log")) == 4, what="the missed publications")
    assert [p["data"] for p in pubs(page, "ann", "chat:log")] == [1, 2, 3, 4]
    assert [p["offset"] for p in pubs(page, "ann", "chat:log")] == [1, 2, 3, 4]


def test_it_reconnects_by_itself_across_a_gateway_restart_and_recovers(page, gateway):
    page.execute_script("T.make('max', arguments[0], arguments[1]); T.subscribe('max', 'chat:ops'); T.clients.max.connect()",
                        gateway.ws_url, jwt(SECRET, "9"))
    wait_until(lambda: log(page, "max")["subscribed"], what="subscribed")
    gateway.api("publish", {"channel": "chat:ops", "data": "before"})
    wait_until(lambda: len(pubs(page, "max", "chat:ops")) == 1, what="the first publication")
    gateway.stop()
    wait_until(lambda: page.execute_script("return T.clients.max.state") != "connected", what="the client noticing")
    gateway.start()  # same port, same Redis: history survives
    gateway.api("publish", {"channel": "chat:ops", "data": "during"})
    # Connected again by itself, to the new process: the stopping one closed its listener before
    # its connections, so the client could not reconnect to it.
    wait_until(lambda: connected_count(page, "max") >= 2 and page.execute_script("return T.clients.max.state") == "connected",
               timeout=60, what="a reconnect by itself")
    gateway.api("publish", {"channel": "chat:ops", "data": "after"})
    wait_until(lambda: len(pubs(page, "max", "chat:ops")) == 3, what=f"every publication ({log(page, 'max')})")
    assert [p["data"] for p in pubs(page, "max", "chat:ops")] == ["before", "during", "after"]
    assert page.execute_script("return T.clients.max.stats.reconnects") >= 1


def test_backoff_grows_with_jitter_up_to_its_cap(page):
    delays = page.execute_script(
        "var out = []; for (var a = 0; a < 8; a++) { var row = []; for (var i = 0; i < 50; i++) row.push(SBRealtime.backoff(a, 500, 20000)); out.push(row); } return out;")
    for attempt, row in enumerate(delays):
        step = min(20000, 500 * 2 ** attempt)
        assert all(step / 2 <= d <= step for d in row), (attempt, row)
        assert len(set(row)) > 1, "jittered"
    assert max(delays[7]) <= 20000


def unidirectional_url(gateway, path, user, channel):
    """The gateway's `path` with a connect request in `cf_connect` whose token subscribes `user` to `channel`."""
    request = json.dumps({"token": jwt(SECRET, user, channels=[channel])})
    return gateway.ws_url.replace("/connection/websocket", path) + "?cf_connect=" + urllib.parse.quote(request)


def connect_then_publish(page, gateway, log, channel, data):
    """Waits for the connect push among the page's `window[log].messages`, publishes `data` on
    `channel`, waits for it; returns the connect push's body, the publication and a reader of the messages."""
    messages = lambda: page.execute_script(f"return {log}.messages")
    wait_until(lambda: messages(), what="the connect push")
    gateway.api("publish", {"channel": channel, "data": data})
    wait_until(lambda: any("pub" in m for m in messages()), what="the publication")
    return messages()[0]["connect"], next(m for m in messages() if "pub" in m), messages


def test_a_plain_browser_websocket_reads_the_unidirectional_endpoint(page, gateway):
    """No client library: Chromium's own WebSocket on /connection/uni_websocket with the connect
    request in the URL. Chromium answers the gateway's WebSocket pings by itself (ping_interval 1,
    pong_timeout 5 here), which is what keeps the connection."""
    url = unidirectional_url(gateway, "/connection/uni_websocket", "11", "chat:feed")
    page.execute_script(
        "window.U = {messages: [], closed: null};"
        "var ws = new WebSocket(arguments[0]);"
        "ws.onmessage = function (e) { U.messages.push(JSON.parse(e.data)); };"
        "ws.onclose = function (e) { U.closed = e.code; };", url)
    connect, publication, messages = connect_then_publish(page, gateway, "U", "chat:feed", {"n": 1})
    assert "chat:feed" in connect["subs"] and connect["ping"] == 1
    assert publication["channel"] == "chat:feed" and publication["pub"]["data"] == {"n": 1}
    # Past pong_timeout several times over: the pings ({} alongside a WebSocket ping) came and the
    # connection stayed.
    time.sleep(8)
    assert page.execute_script("return U.closed") is None
    assert sum(1 for m in messages() if m == {}) >= 3


def test_a_browser_event_source_reads_the_unidirectional_stream(page, gateway):
    """Chromium's EventSource on /connection/uni_sse from a page of another origin: the connect
    push and a publication arrive as `message` events, pings as `ping` events."""
    url = unidirectional_url(gateway, "/connection/uni_sse", "12", "chat:events").replace("ws://", "http://")
    page.execute_script(
        "window.S = {messages: [], pings: 0, errors: 0};"
        "var source = new EventSource(arguments[0]);"
        "source.onmessage = function (e) { S.messages.push(JSON.parse(e.data)); };"
        "source.addEventListener('ping', function () { S.pings += 1; });"
        "source.onerror = function () { S.errors += 1; };", url)
    connect, publication, _ = connect_then_publish(page, gateway, "S", "chat:events", {"n": 2})
    assert "chat:events" in connect["subs"]
    assert publication["pub"]["data"] == {"n": 2}
    wait_until(lambda: page.execute_script("return S.pings") >= 2, what="two pings")
    assert page.execute_script("return S.errors") == 0


def test_a_browser_event_source_recovers_across_a_gateway_restart(page, gateway):
    """Chromium's EventSource, from a page of another origin, reconnects by itself after the gateway
    restarts and sends the id of the last event it read (`Last-Event-ID`): what was published while
    it was away arrives in the new connect push, once."""
    url = unidirectional_url(gateway, "/connection/uni_sse", "13", "chat:resume").replace("ws://", "http://")
    page.execute_script(
        "window.R = {messages: [], ids: []};"
        "var source = new EventSource(arguments[0]);"
        "source.onmessage = function (e) { R.messages.push(JSON.parse(e.data)); R.ids.push(e.lastEventId); };", url)
    connect_then_publish(page, gateway, "R", "chat:resume", "before")
    gateway.stop()
    gateway.start()  # same port, same Redis: history survives
    gateway.api("publish", {"channel": "chat:resume", "data": "during"})
    messages = lambda: page.execute_script("return R.messages")
    connects = lambda: [m["connect"] for m in messages() if "connect" in m]
    wait_until(lambda: len(connects()) >= 2, timeout=60, what="a second connect push")
    gateway.api("publish", {"channel": "chat:resume", "data": "after"})
    recovered = connects()[1]["subs"]["chat:resume"]
    assert recovered.get("recovered") is True, recovered
    assert [p["data"] for p in recovered.get("publications", [])] == ["during"]
    wait_until(lambda: any(m.get("pub", {}).get("data") == "after" for m in messages()), what="the publication after")
    live = [m["pub"]["data"] for m in messages() if "pub" in m]
    assert live == ["before", "after"], live
    ids = page.execute_script("return R.ids")
    assert ids[-1].startswith("chat:resume/3/"), ids
