"""Celery side of scripts/bench/queue.sh: a no-op task on a Redis broker.

The task counts its completions in Redis (one INCR per task) so the driver can time the drain;
Switchboard's diag.noop does not even do that, so the comparison slightly favours neither side
in Celery's direction only.
"""
import os
import time

import redis
from celery import Celery

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6380/0")
PREFIX = os.environ.get("BENCH_PREFIX", "sbbench:celery:")
TOTAL = int(os.environ.get("BENCH_JOBS", "20000"))

app = Celery("sbbench", broker=URL)
app.conf.update(
    task_ignore_result=True,
    task_default_queue="bench",
    broker_transport_options={"global_keyprefix": PREFIX},
    worker_hijack_root_logger=False,
)

_redis = redis.Redis.from_url(URL)


@app.task(ignore_result=True)
def noop():
    done = _redis.incr(PREFIX + "done")
    if done == 1:
        _redis.set(PREFIX + "first", repr(time.time()))
    if done == TOTAL:
        _redis.set(PREFIX + "last", repr(time.time()))
