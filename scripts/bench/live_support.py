"""Live-support latency through real processes on this machine: a `switchboard gateway` and a
`switchboard api` (live_harness from the interop tests) on the shared Redis and MariaDB, with
centrifuge-python as the visitor and the operator. Three measurements, each N sequential round
trips, timed from just before the sending call to the receiving client's publication callback:

  gateway   bare gateway: POST /api/publish on the gateway (cent) -> the operator's client
  visitor   visitor POST .../sessions/{id}/messages (human mode) -> operator notification
  operator  operator POST .../sessions/{id}/messages -> the visitor's client
  http      the HTTP client's own floor: GET /api/v1/widget/{publicId}/config answered (one
            indexed read; the same client, a new connection per request, as the two above)

Prints p50/p99/mean in ms and the live-support paths' p50 minus the bare gateway's p50.
  python scripts/bench/live_support.py [--n 1000]
Needs SB_TEST_REDIS_URL / SB_TEST_DATABASE_URL (scripts/services) and a built switchboard
(SB_GATEWAY_CMD, or .build/release|debug/switchboard)."""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Tests" / "Interop"))
sys.path.insert(0, str(ROOT / "Tests" / "Interop" / "gateway"))

from cent import AsyncClient, PublishRequest  # noqa: E402
from centrifuge import Client, PublicationContext, SubscribedContext, SubscriptionEventHandler  # noqa: E402

from gateway_harness import API_KEY, gateway_command  # noqa: E402
from live_harness import LiveStack, http  # noqa: E402


class Waiter(SubscriptionEventHandler):
    def __init__(self):
        self.subscribed = asyncio.Event()
        self.pending = None  # (predicate, future)

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed.set()

    async def on_publication(self, ctx: PublicationContext) -> None:
        if __import__("os").environ.get("BENCH_DEBUG"):
            print("got", ctx.pub.data, flush=True)
        if self.pending and self.pending[0](ctx.pub.data):
            predicate, future = self.pending
            self.pending = None
            if not future.done():
                future.set_result(time.perf_counter())

    def expect(self, predicate):
        future = asyncio.get_running_loop().create_future()
        self.pending = (predicate, future)
        return future


def summary(name, samples):
    ordered = sorted(samples)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"{name:9} n={len(samples)} p50={p50:.2f} ms p99={p99:.2f} ms mean={statistics.mean(samples):.2f} ms")
    return p50


async def measure(n, send, waiter, predicate_for):
    samples = []
    for i in range(n):
        if waiter is None:
            start = time.perf_counter()
            await send(i)
            samples.append((time.perf_counter() - start) * 1000)
            continue
        future = waiter.expect(predicate_for(i))
        start = time.perf_counter()
        await send(i)
        try:
            end = await asyncio.wait_for(future, 10)
        except asyncio.TimeoutError:
            raise RuntimeError(f"round trip {i} of {send} got no publication in 10 s") from None
        samples.append((end - start) * 1000)
    return samples


async def main(n):
    redis = __import__("os").environ.get("SB_TEST_REDIS_URL", "redis://127.0.0.1:6380/0")
    prefix = f"sbbench:{uuid.uuid4().hex[:8]}:"
    redis_url = f"{redis}{'&' if '?' in redis else '?'}prefix={prefix}"
    with tempfile.TemporaryDirectory() as folder:
        stack = LiveStack(redis_url, Path(folder))
        try:
            print(f"binary: {gateway_command()[0]}")
            gateway = stack.gateway()
            api = stack.api(gateway, SB_LIVE_MESSAGES_PER_MINUTE=0, SB_LIVE_MESSAGES_PER_SESSION=0, SB_LIVE_WIDGET_MESSAGES_PER_MINUTE=0)
            owner = stack.user("owner@example.com", "Owner")
            stack.user("olga@example.com", "Olga")
            widget = http("POST", f"{api.url}/api/v1/widgets", {"name": "Bench", "allowedOrigins": ["*"]}, token=owner).json
            session = http("POST", f"{api.url}/api/v1/widget/{widget['publicId']}/sessions").json
            base = f"{api.url}/api/v1/widgets/{widget['id']}/sessions/{session['sessionId']}"
            assert http("POST", f"{base}/takeover", token=owner).status == 200

            operator_token = http("POST", f"{api.url}/api/v1/realtime/token", token=owner).json["token"]
            operator = Client(gateway.ws_url, token=operator_token)
            notes, bare = Waiter(), Waiter()
            bare_channel = f"widget:session.{widget['publicId']}.bench"
            subs = [operator.new_subscription(f"widget:operators.{widget['id']}", events=notes),
                    operator.new_subscription(bare_channel, events=bare)]
            visitor = Client(gateway.ws_url, token=session["realtime"]["token"])
            inbox = Waiter()
            subs.append(visitor.new_subscription(session["realtime"]["channels"]["session"], events=inbox))
            await operator.connect()
            await visitor.connect()
            for sub in subs:
                await sub.subscribe()
            for waiter in (notes, bare, inbox):
                await asyncio.wait_for(waiter.subscribed.wait(), 10)

            loop = asyncio.get_running_loop()
            cent = AsyncClient(gateway.api_url, API_KEY)
            visitor_url = f"{api.url}/api/v1/widget/{widget['publicId']}/sessions/{session['sessionId']}/messages"

            async def bare_publish(i):
                await cent.publish(PublishRequest(channel=bare_channel, data={"type": "message", "ts": 0, "data": {"n": i}}))

            async def visitor_post(i):
                await loop.run_in_executor(None, lambda: http("POST", visitor_url, {"content": f"v{i}"}, token=session["sessionToken"]))

            config_url = f"{api.url}/api/v1/widget/{widget['publicId']}/config"

            async def http_floor(i):
                await loop.run_in_executor(None, lambda: http("GET", config_url))

            async def operator_post(i):
                await loop.run_in_executor(None, lambda: http("POST", f"{base}/messages", {"content": f"o{i}"}, token=owner))

            # Warm-up (connections, JIT-free but cold caches), then the measured rounds interleaved in blocks.
            await measure(20, bare_publish, bare, lambda i: lambda d: d["data"].get("n") == i)
            await measure(20, visitor_post, notes, lambda i: lambda d: d["data"].get("preview") == f"v{i}")
            await measure(20, operator_post, inbox, lambda i: lambda d: d["data"].get("content") == f"o{i}")
            results = {"gateway": [], "http": [], "visitor": [], "operator": []}
            block = max(1, n // 10)
            for start in range(0, n, block):
                count = min(block, n - start)
                results["gateway"] += await measure(count, lambda i, s=start: bare_publish(s + i), bare, lambda i, s=start: lambda d: d["data"].get("n") == s + i)
                results["http"] += await measure(count, http_floor, None, None)
                results["visitor"] += await measure(
                    count, lambda i, s=start: visitor_post(s + i), notes, lambda i, s=start: lambda d: d["data"].get("preview") == f"v{s + i}")
                results["operator"] += await measure(
                    count, lambda i, s=start: operator_post(s + i), inbox, lambda i, s=start: lambda d: d["data"].get("content") == f"o{s + i}")
            base_p50 = summary("gateway", results["gateway"])
            summary("http", results["http"])
            for name in ("visitor", "operator"):
                p50 = summary(name, results[name])
                print(f"{name:9} adds {p50 - base_p50:+.2f} ms at p50 over the bare gateway publish")
            await visitor.disconnect()
            await operator.disconnect()
            await cent.close()
        finally:
            stack.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    asyncio.run(main(parser.parse_args().n))
