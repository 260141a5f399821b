"""Times Celery draining BENCH_JOBS queued no-op tasks: enqueue first (timed separately), then
start a worker and measure from the first task's completion to the last one's."""
import os
import subprocess
import sys
import time

import redis

pool = sys.argv[1] if len(sys.argv) > 1 else "threads"
concurrency = sys.argv[2] if len(sys.argv) > 2 else "64"
os.environ.setdefault("BENCH_PREFIX", f"sbbench:celery:{os.getpid()}:")
from tasks import PREFIX, TOTAL, URL, noop  # noqa: E402

r = redis.Redis.from_url(URL)


def clean():
    keys = list(r.scan_iter(PREFIX + "*", count=1000))
    if keys:
        r.delete(*keys)


clean()
started = time.time()
for _ in range(TOTAL):
    noop.delay()
enqueue_seconds = time.time() - started

here = os.path.dirname(os.path.abspath(__file__))
worker = subprocess.Popen(
    [os.path.join(here, ".venv/bin/celery"), "-A", "tasks", "worker", "--pool", pool, "--concurrency", concurrency,
     "-Q", "bench", "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel", "WARNING"],
    cwd=here, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    deadline = time.time() + 600
    while r.get(PREFIX + "last") is None:
        if time.time() > deadline or worker.poll() is not None:
            sys.exit("celery worker did not finish")
        time.sleep(0.05)
    first = float(r.get(PREFIX + "first"))
    last = float(r.get(PREFIX + "last"))
finally:
    worker.terminate()
    worker.wait()
    clean()

seconds = last - first
print(f"celery.noop pool={pool} concurrency={concurrency} jobs={TOTAL} seconds={seconds:.3f} "
      f"jobs_per_sec={(TOTAL - 1) / seconds:.0f} enqueue_per_sec={TOTAL / enqueue_seconds:.0f}", flush=True)
